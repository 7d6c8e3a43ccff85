"""``meshery-meshsync``: the command line of Go MeshSync's binary, for Meshery Operator.

Meshery Operator renders its own Deployment for MeshSync: ``command: ["./meshery-meshsync"]``
in the image's working directory, no arguments, and (for older versions) a liveness probe that
runs ``./meshery-meshsync -h`` every 30 seconds. This command takes exactly what that binary
takes: Go's flags with one dash or two (``-output file``, ``-stopAfter=8s``), no subcommand, and
``-h``/``-help`` print the flags and exit 0 without loading any plugin (the probe stays cheap).
Everything else is ``meshsync run`` with the same arguments, so every option of
``meshsync run --help`` works here too.
"""

from __future__ import annotations

import sys

PROG = "meshery-meshsync"

#: Go MeshSync's flags (main.go's parseFlags), in Go's usage order (sorted), with their help.
GO_FLAGS: list[tuple[str, str, str]] = [
    (
        "broker-url",
        "string",
        "NATS URL(s) of Meshery's broker, e.g. nats://meshery-nats:4222 (default: the "
        "BROKER_URL environment variable; Go MeshSync ignores this flag, this one honours it)",
    ),
    (
        "output",
        "string",
        'output mode: "broker" (NATS) or "file", or any installed sink (default "broker")',
    ),
    (
        "outputFile",
        "string",
        "output file for the cluster snapshot, file mode only "
        '(default "./meshery-cluster-snapshot-YYYYMMDD-00.yaml")',
    ),
    (
        "outputNamespaces",
        "string",
        'only objects in these namespaces, comma separated, e.g. "default,agile-otter"',
    ),
    (
        "outputResources",
        "string",
        'only these resources, comma separated, case insensitive, e.g. "pod,deployment"',
    ),
    (
        "stopAfter",
        "duration",
        "stop cleanly after this long, e.g. 8s, 2m (default: run until stopped; a negative "
        "duration also means that)",
    ),
]
_VALUE_FLAGS = {name for name, _, _ in GO_FLAGS}
_HELP = {"-h", "--h", "-help", "--help"}


def usage() -> str:
    """What ``-h`` prints: Go's ``flag`` usage layout, then what else is accepted."""
    lines = [f"Usage of {PROG}:"]
    for name, kind, text in GO_FLAGS:
        lines.append(f"  -{name} {kind}")
        lines.append(f"    \t{text}")
    lines += [
        "",
        "Flags take one dash or two, and -flag=value or -flag value. Every option of",
        "'meshsync run' is accepted as well ('meshsync run --help' lists them).",
        "Environment: BROKER_URL, DEBUG=true, MESHSYNC_REDACT_SECRETS, KUBECONFIG, and the",
        "variable of each option. Health and readiness on port 11000: /healthz, /readyz.",
    ]
    return "\n".join(lines)


def _flag_name(arg: str) -> str | None:
    """``output`` for ``-output``, ``--output`` or ``-output=x``; None for a non-flag."""
    if not arg.startswith("-") or arg in ("-", "--"):
        return None
    return arg.lstrip("-").split("=", 1)[0]


def wants_help(args: list[str]) -> bool:
    """Whether Go's flag parser would answer ``args`` with its usage (``flag.ErrHelp``).

    A help flag counts where it is a flag, not where it is the value of a Go flag before it
    (``-output -h`` sets the output to "-h" in Go, and is refused by ``run`` here).
    """
    expects_value = False
    for arg in args:
        if expects_value:
            expects_value = False
            continue
        if arg == "--":
            return False
        if arg in _HELP:
            return True
        name = _flag_name(arg)
        expects_value = name in _VALUE_FLAGS and "=" not in arg
    return False


def _is_negative_duration(value: str) -> bool:
    return value.startswith("-") and len(value) > 1 and (value[1].isdigit() or value[1] == ".")


def drop_negative_stop_after(args: list[str]) -> list[str]:
    """Go's ``-stopAfter`` default is ``-1ns`` (run forever), and any negative value means
    that there; ``run`` refuses negative durations, so such a flag is simply dropped."""
    out: list[str] = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg == "--":
            out.extend(args[i:])
            break
        if _flag_name(arg) == "stopAfter":
            if "=" in arg:
                if _is_negative_duration(arg.split("=", 1)[1]):
                    continue
            elif i + 1 < len(args) and _is_negative_duration(args[i + 1]):
                skip = True
                continue
        out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run as Go MeshSync's binary would; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if wants_help(args):
        print(usage())
        return 0
    from meshsync_core import cli  # only now: loading every plugin takes a moment

    return cli.main(["run", *drop_negative_stop_after(args)], keep_signals=True)


def entry() -> None:
    sys.exit(main())
