"""Without meshsync-speedups' C extensions, everything still works and writes the same.

A machine without a C compiler gets a pure-Python ``meshsync-speedups`` wheel; the plugins then
find none of its modules and run their Python paths. This builds that wheel as such a machine
would (``MESHSYNC_SPEEDUPS_PURE_PYTHON=1``), then runs ``meshsync demo --once`` to a file and to
NATS in a process where the compiled modules cannot be imported, and compares what it wrote
with a run that uses them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import nats
import orjson
import pytest
import yaml
from meshsync_testkit.nats_server import NatsServer
from nats.aio.msg import Msg

ROOT = Path(__file__).resolve().parents[2]
COMPILED = (
    "meshsync_speedups._object_meta",
    "meshsync_speedups._meshery_message",
    "meshsync_speedups._yaml_writer",
)
SUBJECT = "meshery.meshsync.core"


@pytest.mark.timeout(300)
def test_the_wheel_built_without_a_compiler_is_pure_python(tmp_path: Path) -> None:
    env = {**os.environ, "MESHSYNC_SPEEDUPS_PURE_PYTHON": "1"}
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path),
         str(ROOT / "plugins" / "meshsync_speedups")],
        env=env, check=True, capture_output=True, timeout=240,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("meshsync_speedups-*.whl")
    assert wheel.name.endswith("-py3-none-any.whl"), wheel.name
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "meshsync_speedups/__init__.py" in names
    assert not [name for name in names if name.endswith((".so", ".pyd"))], names


async def run_demo(tmp_path: Path, label: str, *, compiled: bool, broker: str) -> tuple[list, list]:
    """``meshsync demo --once`` to a file and to NATS; the documents and the messages."""
    snapshot = tmp_path / f"{label}.yaml"
    script = textwrap.dedent(f"""
        import sys
        if not {compiled!r}:
            for name in {COMPILED!r}:
                sys.modules[name] = None  # an import of it fails, as with no compiled module
        from meshsync_k8s import raw_json
        from meshsync_nats import wire
        from meshsync_file import yaml_writer
        want = "c" if {compiled!r} else "python"
        found = (raw_json.IMPLEMENTATION, wire.IMPLEMENTATION, yaml_writer.IMPLEMENTATION)
        assert found == (want, want, want), found
        from meshsync_core import cli
        sys.exit(cli.main(sys.argv[1:]))
    """)
    received: list[bytes] = []
    subscriber = await nats.connect(broker)

    async def on_message(msg: Msg) -> None:
        received.append(msg.data)

    await subscriber.subscribe(SUBJECT, cb=on_message)
    await subscriber.flush()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, "demo", "--once", "--output", "file", "--output", "nats",
        "--broker-url", broker, "--output-file", str(snapshot), "--file-progress", "off",
        "--log-level", "warning",
        env={**os.environ, "MESHSYNC_HEALTH_PORT": "0"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    await subscriber.flush()
    await subscriber.close()
    documents = [doc for doc in yaml.safe_load_all(snapshot.read_text()) if doc]
    return documents, [orjson.loads(data) for data in received]


def without_server_stamps(docs: list) -> list:
    """The documents without what the fake cluster makes afresh in each run, in one order."""
    for doc in docs:
        for field in ("uid", "creationTimestamp", "resourceVersion"):
            doc["metadata"].pop(field, None)
    return sorted(docs, key=lambda d: (d["kind"], d["metadata"].get("namespace", ""),
                                       d["metadata"]["name"]))  # fmt: skip


def identities(messages: list) -> list[tuple[str, str, str]]:
    return sorted(
        (m["EventType"], m["Object"]["kind"], m["Object"]["metadata"]["name"]) for m in messages
    )


@pytest.mark.timeout(300)
async def test_the_plugins_run_their_python_paths_and_write_the_same(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "nats") as broker:
        fast_docs, fast_messages = await run_demo(tmp_path, "c", compiled=True, broker=broker.url)
        slow_docs, slow_messages = await run_demo(tmp_path, "py", compiled=False, broker=broker.url)
    assert len(fast_docs) > 10
    assert without_server_stamps(fast_docs) == without_server_stamps(slow_docs)
    assert len(fast_messages) >= len(fast_docs)
    assert identities(fast_messages) == identities(slow_messages)
