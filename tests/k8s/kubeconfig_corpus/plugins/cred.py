"""A credential plugin for the kubeconfig corpus: prints the ExecCredential its arguments ask
for and counts its runs in ``runs/<name>`` (next to ``plugins/``). Run with sys.executable."""

import argparse
import json
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

root = Path(__file__).resolve().parent.parent
parser = argparse.ArgumentParser()
parser.add_argument("--count", help="name of the run counter (runs/<name>, one line per run)")
parser.add_argument("--token", help="the token (with --numbered: <token>-<run number>)")
parser.add_argument("--numbered", action="store_true")
parser.add_argument("--token-from-env", metavar="VARIABLE")
parser.add_argument("--token-from-cluster", action="store_true", help="needs provideClusterInfo")
parser.add_argument("--expires-in", type=float, metavar="SECONDS")
parser.add_argument("--cert", action="store_true", help="return pki/client.crt and .key")
parser.add_argument("--api-version", help="answer with this apiVersion instead of the asked one")
parser.add_argument("--exit", type=int, default=0, help="fail with this exit code")
args = parser.parse_args()

run = 1
if args.count:
    counter = root / "runs" / args.count
    counter.parent.mkdir(exist_ok=True)
    with counter.open("a") as out:
        out.write("run\n")
    run = len(counter.read_text().splitlines())
if args.exit:
    print("the plugin failed on purpose", file=sys.stderr)
    sys.exit(args.exit)
info = json.loads(os.environ.get("KUBERNETES_EXEC_INFO") or "{}")
status: dict = {}
if args.token:
    status["token"] = f"{args.token}-{run}" if args.numbered else args.token
if args.token_from_env:
    status["token"] = os.environ[args.token_from_env]
if args.token_from_cluster:
    cluster = info["spec"]["cluster"]
    status["token"] = f"for {cluster['server']} {cluster['config']['audience']}"
if args.cert:
    status["clientCertificateData"] = (root / "pki" / "client.crt").read_text()
    status["clientKeyData"] = (root / "pki" / "client.key").read_text()
if args.expires_in is not None:
    expiry = datetime.now(timezone.utc) + timedelta(seconds=args.expires_in)
    status["expirationTimestamp"] = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
api_version = args.api_version or info.get("apiVersion")
print(json.dumps({"apiVersion": api_version, "kind": "ExecCredential", "status": status}))
