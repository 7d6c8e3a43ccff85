"""Build the Go programs of the real-cluster tests once per machine, in a cache outside the repo.

Each folder here with a `go.mod` is a small Go module of ours that names, as `tool` directives or
its own `main` packages, the real programs it builds from their published Go modules
(kube-apiserver, etcd, kwok, ...). The binaries land in
`$MESHSYNC_GO_BIN_CACHE` (default `~/.cache/meshsync/go-bin`) under a key made of the module's
files and the Go version, so a changed `go.mod` builds anew and an unchanged one is reused. Go's
own build and module caches stay where Go keeps them (also outside the repository).

    python -m tests.realkube.build            # build (or reuse) every module, print the timings
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULES = ("controlplane", "kwok")
TAIL_LINES = 40  # how much of a failed build's output a failure shows
ASSETS = "assets.txt"  # "<module> <path>" lines: data files of a dependency to keep by the binaries
KEYED_FILES = ("go.mod", "go.sum", ASSETS)


class BuildError(RuntimeError):
    """A Go build failed or cannot start; the message carries the command and its last lines."""


@dataclass(frozen=True)
class Built:
    module: str
    bin_dir: Path
    seconds: float  # 0.0 when the cache already held it
    cached: bool

    def path(self, program: str) -> Path:
        return self.bin_dir / program


def cache_root() -> Path:
    configured = os.environ.get("MESHSYNC_GO_BIN_CACHE")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "meshsync" / "go-bin"


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            "the real-cluster tests need the Go toolchain (`go` on PATH) to build kube-apiserver, "
            "etcd and kwok from their Go modules; none was found"
        )
    return go


def _programs(module_dir: Path) -> list[str]:
    """Package paths to build: the module's `tool` lines and its own main packages."""
    tools: list[str] = []
    in_block = False
    for raw in (module_dir / "go.mod").read_text().splitlines():
        line = raw.split("//", 1)[0].strip()
        if line == "tool (":
            in_block = True
        elif in_block and line == ")":
            in_block = False
        elif in_block and line:
            tools.append(line)
        elif line.startswith("tool "):
            tools.append(line.removeprefix("tool ").strip())
    mains = sorted(
        "./" + str(p.parent.relative_to(module_dir))
        for p in module_dir.rglob("main.go")
        if p.parent != module_dir
    )
    return tools + mains


def _key(module_dir: Path, go: str) -> str:
    digest = hashlib.sha256()
    version = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=True)
    digest.update(version.stdout.encode())
    for path in sorted(module_dir.rglob("*")):
        if path.is_file() and (path.suffix == ".go" or path.name in KEYED_FILES):
            digest.update(str(path.relative_to(module_dir)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def ensure_built(module: str, *, log=None) -> Built:
    """Return the module's binaries, building them first if the cache lacks them."""
    module_dir = HERE / module
    go = _go()
    target = cache_root() / f"{module}-{_key(module_dir, go)}"
    if (target / ".complete").exists():
        return Built(module, target, 0.0, cached=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{module}.lock", "w") as lock:
        fcntl.flock(
            lock, fcntl.LOCK_EX
        )  # a second pytest on this machine waits for the first build
        if (target / ".complete").exists():
            return Built(module, target, 0.0, cached=True)
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        programs = _programs(module_dir)
        command = [go, "build", "-trimpath", "-ldflags=-s -w", "-o", str(staging) + "/", *programs]
        if log:
            log(f"building {module} ({', '.join(p.rsplit('/', 1)[-1] for p in programs)}) ...")
        started = time.monotonic()
        env = {**os.environ, "GOFLAGS": "-mod=readonly -buildvcs=false", "CGO_ENABLED": "0"}
        result = subprocess.run(
            command, cwd=module_dir, env=env, capture_output=True, text=True, check=False
        )
        seconds = time.monotonic() - started
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-TAIL_LINES:])
            raise BuildError(
                f"`{' '.join(command)}` in {module_dir} failed (exit {result.returncode}) "
                f"after {seconds:.0f} s:\n{tail}"
            )
        _copy_assets(module_dir, staging, go, env)
        (staging / ".complete").write_text(f"{seconds:.1f}\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        return Built(module, target, seconds, cached=False)


def _copy_assets(module_dir: Path, staging: Path, go: str, env: dict[str, str]) -> None:
    listing = module_dir / ASSETS
    if not listing.exists():
        return
    for line in listing.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        module, path = line.split()
        found = subprocess.run(
            [go, "list", "-m", "-f", "{{.Dir}}", module],
            cwd=module_dir,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        source = Path(found.stdout.strip()) / path
        if found.returncode != 0 or not source.is_file():
            raise BuildError(f"{module} has no {path} ({found.stderr.strip()})")
        (staging / "assets").mkdir(exist_ok=True)
        shutil.copyfile(source, staging / "assets" / source.name)


def main() -> int:
    for module in MODULES:
        try:
            built = ensure_built(module, log=lambda m: print(m, file=sys.stderr, flush=True))
        except BuildError as error:
            print(error, file=sys.stderr)
            return 1
        state = "cached" if built.cached else f"built in {built.seconds:.0f} s"
        print(f"{module}: {state}: {built.bin_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
