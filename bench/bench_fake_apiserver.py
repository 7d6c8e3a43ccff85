"""How fast does the fake kube-apiserver serve lists? (It must not dominate client benchmarks.)

Loads N objects from ``bulk_objects`` and pages through all pods and configmaps with an aiohttp
client: once without decoding (server + HTTP), once decoding every page with orjson the way
MeshSync's source lists, and once unpaged; first it pages in-process (the server's own work,
no HTTP). Prints objects/s. Note: with large pages the aiohttp client's default 64 KiB read
buffer costs noticeably; ``ClientSession(read_bufsize=2**20)`` is ~1.4x faster.

    python bench/bench_fake_apiserver.py [N ...] [--mode same|process|both]

(default N: 10000 100000). "process" runs the server in a child process so that the client's
decoding and the server use different cores, which is how to keep the fake out of the way of
a client benchmark on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import re
import time
from typing import Any

import aiohttp
import orjson
from meshsync_testkit.fake_apiserver import FakeApiServer, bulk_objects
from meshsync_testkit.fake_apiserver.encoding import list_body

_CONTINUE = re.compile(rb'"continue":"([^"]*)"')


async def page_through(
    session: aiohttp.ClientSession, url: str, kind: str, limit: int, decode: bool
) -> tuple[int, int]:
    """List every object with limit/continue; returns (objects, bytes).

    ``decode=False`` measures the server (and HTTP) alone: the continue token is read from the
    list metadata at the front of the body and objects are counted by their top-level kind.
    """
    count = size = 0
    token = ""
    marker = b'"kind":"' + kind.encode() + b'"'
    while True:
        params = {"limit": str(limit)} if limit else {}
        if token:
            params["continue"] = token
        async with session.get(url, params=params) as resp:
            body = await resp.read()
        size += len(body)
        if decode:
            page = orjson.loads(body)
            count += len(page["items"])
            token = page["metadata"].get("continue", "")
        else:
            count += body.count(marker)
            m = _CONTINUE.search(body, 0, 512)
            token = m.group(1).decode() if m else ""
        if not token:
            return count, size


HEADER = (
    f"{'list':<24}{'limit':>6}{'decode':>8}{'objects':>9}{'MB':>7}{'seconds':>9}{'objects/s':>11}"
)


def row(name: str, limit: int, decode: bool, count: int, size: int, seconds: float) -> str:
    return (
        f"{name:<24}{limit:>6}{'orjson' if decode else '-':>8}{count:>9,}{size / 1e6:>7.1f}"
        f"{seconds:>9.2f}{count / seconds:>11,.0f}"
    )


def page_in_process(server: FakeApiServer, plural: str) -> tuple[int, int]:
    """The server's own work per page (select + assemble bytes), without HTTP."""
    rt = server.registry.lookup("", "v1", plural)
    assert rt is not None
    count = size = 0
    token = ""
    while True:
        page = server.store.list(rt, None, limit=500, continue_token=token)
        body = list_body(rt, page.entries, page.resource_version, page.continue_token)
        count += len(page.entries)
        size += len(body)
        token = page.continue_token
        if not token:
            return count, size


async def http_rows(url: str, label: str) -> None:
    """Page through pods and configmaps at ``url``: raw, decoded, and unpaged."""
    async with aiohttp.ClientSession() as session:
        for plural, kind in (("pods", "Pod"), ("configmaps", "ConfigMap")):
            for limit, decode in ((500, False), (500, True), (0, False)):
                t = time.perf_counter()
                count, size = await page_through(
                    session, f"{url}/api/v1/{plural}", kind, limit, decode
                )
                dt = time.perf_counter() - t
                print(row(f"{label} {plural}", limit, decode, count, size, dt))


async def bench_same_process(n: int) -> None:
    """Server and client share one process and event loop, as in MeshSync's async tests."""
    server = FakeApiServer()
    t0 = time.perf_counter()
    objs = list(bulk_objects(n))
    t1 = time.perf_counter()
    server.load(objs)
    t2 = time.perf_counter()
    del objs
    print(
        f"\nN={n:,}: bulk_objects {t1 - t0:.2f}s, server.load {t2 - t1:.2f}s "
        f"({n / (t2 - t1):,.0f} objects/s)"
    )
    print(HEADER)
    for plural in ("pods", "configmaps"):
        t = time.perf_counter()
        count, size = page_in_process(server, plural)
        print(row(f"in-process {plural}", 500, False, count, size, time.perf_counter() - t))
    await server.start()
    try:
        await http_rows(server.url, "HTTP")
    finally:
        await server.stop()


def _serve_in_child(n: int, urls: multiprocessing.Queue, done: Any) -> None:
    with FakeApiServer.in_thread() as server:
        server.load(bulk_objects(n))
        urls.put(server.url)
        done.wait()


def bench_other_process(n: int) -> None:
    """The server in a child process: the client's decoding gets the other core to itself."""
    urls: multiprocessing.Queue = multiprocessing.Queue()
    done = multiprocessing.Event()
    child = multiprocessing.Process(target=_serve_in_child, args=(n, urls, done), daemon=True)
    child.start()
    try:
        url = urls.get(timeout=600)
        print(f"\nN={n:,}, server in a separate process")
        print(HEADER)
        asyncio.run(http_rows(url, "HTTP(proc)"))
    finally:
        done.set()
        child.join(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000])
    parser.add_argument("--mode", choices=("same", "process", "both"), default="both")
    args = parser.parse_args()
    for n in args.sizes:
        if args.mode in ("same", "both"):
            asyncio.run(bench_same_process(n))
        if args.mode in ("process", "both"):
            bench_other_process(n)


if __name__ == "__main__":
    main()
