"""Build every distribution of this repository (sdist + wheel) into ``dist/``, then check them.

    python scripts/build_dists.py                  # what to upload to an index
    python scripts/build_dists.py --with-deps      # a wheelhouse: also every dependency's wheel
    python scripts/build_dists.py --no-isolation   # build with this environment's hatchling

``meshsync`` (the core) and the plugins under ``plugins/`` are built with ``python -m build``,
each wheel from its own sdist (so an sdist that misses a file fails here, not on a user's
machine), and ``twine check --strict`` then checks the metadata of every file. Earlier builds of
these distributions in the output directory are removed first; other files are left alone.

With ``--with-deps`` the wheels of every third-party dependency of ``meshsync[all,demo]`` are added
(``pip wheel``, for this Python and platform), so that a machine without an index installs with
``pip install --no-index --find-links dist "meshsync[nats]"``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Each distribution's project directory, and the name its files start with.
PROJECTS = {
    "meshsync": ROOT,
    "meshsync_k8s": ROOT / "plugins" / "meshsync_k8s",
    "meshsync_nats": ROOT / "plugins" / "meshsync_nats",
    "meshsync_file": ROOT / "plugins" / "meshsync_file",
    "meshsync_speedups": ROOT / "plugins" / "meshsync_speedups",
    "meshsync_testkit": ROOT / "plugins" / "meshsync_testkit",
}


def build_all(outdir: Path, *, isolation: bool = True) -> list[Path]:
    """Build and check every distribution into ``outdir``; the files made, sorted."""
    outdir.mkdir(parents=True, exist_ok=True)
    for stem in PROJECTS:
        for old in (*outdir.glob(f"{stem}-*.whl"), *outdir.glob(f"{stem}-*.tar.gz")):
            old.unlink()
    for project in PROJECTS.values():
        command = [sys.executable, "-m", "build", "--outdir", str(outdir)]
        if not isolation:
            command.append("--no-isolation")
        subprocess.run([*command, str(project)], check=True)
    made = sorted(
        path
        for stem in PROJECTS
        for path in (*outdir.glob(f"{stem}-*.whl"), *outdir.glob(f"{stem}-*.tar.gz"))
    )
    subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, made)], check=True
    )
    return made


def add_dependencies(outdir: Path, made: list[Path]) -> None:
    """``pip wheel`` every dependency of ``meshsync[all,demo]`` into ``outdir``.

    The wheels just built are named by path, so pip takes them (never the unrelated ``meshsync``
    on PyPI) and fetches only the third-party requirements.
    """
    built = [path for path in made if path.suffix == ".whl"]
    core = next(path for path in built if path.name.startswith("meshsync-"))
    plugins = [path for path in built if path != core]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--wheel-dir", str(outdir),
         f"{core}[all,demo]", *map(str, plugins)],
        check=True,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", type=Path, default=ROOT / "dist", help="default: dist/")
    parser.add_argument(
        "--no-isolation",
        action="store_true",
        help="build with this environment's hatchling and setuptools (no download)",
    )
    parser.add_argument(
        "--with-deps",
        action="store_true",
        help="also the wheels of every dependency (pip wheel), for installing without an index",
    )
    args = parser.parse_args(argv)
    try:
        made = build_all(args.outdir, isolation=not args.no_isolation)
        if args.with_deps:
            add_dependencies(args.outdir, made)
    except subprocess.CalledProcessError as exc:
        print(f"build_dists: failed: {' '.join(map(str, exc.cmd))}", file=sys.stderr)
        return 1
    print(f"{len(made)} distributions in {args.outdir}:")
    for path in made:
        print(f"  {path.name}")
    if args.with_deps:
        total = len(list(args.outdir.glob("*.whl")))
        print(f"with the wheels of their dependencies: {total} wheels in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
