"""The distributions as a user gets them: built into a wheelhouse, installed into a new virtualenv
with ``pip install --no-index --find-links dist "meshsync[nats]"``, run.

Everything is built with the one command that builds every distribution
(``scripts/build_dists.py``, which also runs ``twine check --strict``), once as for an index and
once as a wheelhouse (``--with-deps``). The third-party wheels are downloaded once and kept in
the pytest cache under a key of the exact requirements; the builds and the installs here never
reach an index.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import nats
import orjson
import pytest
import yaml
from meshsync_testkit.fake_apiserver import FakeApiServer, demo_cluster
from meshsync_testkit.nats_server import NatsServer
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import meshsync_core

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: hatchling's dependency
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
VERSION = meshsync_core.__version__
#: The distributions of this repository, by the name their files start with.
OURS = {"meshsync": "meshsync", "meshsync-k8s": "meshsync_k8s",
        "meshsync-nats": "meshsync_nats", "meshsync-file": "meshsync_file",
        "meshsync-speedups": "meshsync_speedups",
        "meshsync-testkit": "meshsync_testkit"}  # fmt: skip
#: What only the test kit may ship: the fake API server, the nats-server fixture, trustme.
TEST_SUPPORT = ("fake_apiserver", "testing.py", "nats_server.py", "trustme", "demo.py")
#: extra -> the plugins it installs (besides the core's own console sink) and the outputs run.
EXTRAS = {
    "nats": ({"k8s", "nats"}, ["nats"]),
    "file": ({"k8s", "file"}, ["file"]),
    "all": ({"k8s", "nats", "file"}, ["nats", "file"]),
    "demo": ({"k8s", "file", "testkit"}, ["file"]),
}


def metadata(wheel: Path) -> dict[str, list[str]]:
    """The core metadata of ``wheel``: field name -> its values."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(archive.read(name).decode())
    fields: dict[str, list[str]] = {}
    for key, value in message.items():
        fields.setdefault(key, []).append(value)
    return fields


def run(command: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run ``command``; on failure, fail the test with its output."""
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, **kwargs
    )  # type: ignore[call-overload]
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, command))} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}",
            pytrace=False,
        )
    return result


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every distribution (sdist + wheel) built by the one build command, checked by twine."""
    out = tmp_path_factory.mktemp("dist")
    script = ROOT / "scripts" / "build_dists.py"
    run([sys.executable, script, "--no-isolation", "--outdir", out], timeout=300)
    return out


def wheels(dist: Path) -> dict[str, Path]:
    return {name: next(dist.glob(f"{stem}-{VERSION}-*.whl")) for name, stem in OURS.items()}


@pytest.fixture(scope="session")
def deps_cache(dist: Path, request: pytest.FixtureRequest) -> Path:
    """Wheels of every third-party requirement of ``meshsync[all]`` (downloaded once)."""
    requirements: set[str] = set()
    for wheel in wheels(dist).values():
        for line in metadata(wheel).get("Requires-Dist", []):
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) in OURS:
                continue
            if requirement.marker is None or requirement.marker.evaluate({"extra": "all"}):
                requirements.add(str(requirement))
    lock = "\n".join([sys.version, sysconfig.get_platform(), *sorted(requirements)])
    key = hashlib.sha256(lock.encode()).hexdigest()[:16]
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        house = cache.mkdir(f"wheelhouse-{key}")
    else:  # -p no:cacheprovider
        house = request.getfixturevalue("tmp_path_factory").mktemp(f"wheelhouse-{key}")
    done = house / "complete"
    if not done.exists():
        run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", house,
             *sorted(requirements)],
            timeout=600,
        )  # fmt: skip
        done.write_text(lock)
    return house


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory, deps_cache: Path) -> Path:
    """``build_dists.py --with-deps``: the README's wheelhouse (its pip finds the third-party
    wheels in the cache, without an index)."""
    out = tmp_path_factory.mktemp("wheelhouse")
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(deps_cache)}
    script = ROOT / "scripts" / "build_dists.py"
    run([sys.executable, script, "--no-isolation", "--with-deps", "--outdir", out],
        env=env, timeout=300)  # fmt: skip
    return out


def scripts(venv_dir: Path) -> Path:
    return venv_dir / ("Scripts" if os.name == "nt" else "bin")


def clean_env(venv_dir: Path) -> dict[str, str]:
    """The environment of a user of that virtualenv: nothing of this checkout or its venv."""
    dropped = ("MESHSYNC_", "PIP_", "PYTHON", "VIRTUAL_ENV", "BROKER_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env["PATH"] = os.pathsep.join([str(scripts(venv_dir)), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(venv_dir)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["MESHSYNC_HEALTH_PORT"] = "0"
    return env


def test_every_distribution_has_the_one_version_and_publishable_metadata(dist: Path) -> None:
    """The same version everywhere; the extras are plain requirements pinned to it."""
    names = sorted(path.name for path in dist.iterdir())
    assert names == sorted(
        [f"{stem}-{VERSION}.tar.gz" for stem in OURS.values()]
        + [wheel.name for wheel in wheels(dist).values()]
    )
    for name, wheel in wheels(dist).items():
        fields = metadata(wheel)
        assert fields["Name"] == [name] and fields["Version"] == [VERSION]
        for line in fields.get("Requires-Dist", []):
            assert Requirement(line).url is None, f"{name}: direct reference {line!r}"
            assert "file:" not in line and str(ROOT) not in line
    core = metadata(wheels(dist)["meshsync"])
    pinned = {}
    for line in core["Requires-Dist"]:
        requirement = Requirement(line)
        if canonicalize_name(requirement.name) in OURS:
            assert str(requirement.specifier) == f"=={VERSION}", line
            extra = str(requirement.marker).split("==")[1].strip(" '\"")
            pinned.setdefault(extra, set()).add(requirement.name)
    speedups = "meshsync-speedups"
    assert pinned["k8s"] == {"meshsync-k8s", speedups}
    assert pinned["nats"] == {"meshsync-k8s", "meshsync-nats", speedups}
    assert pinned["file"] == {"meshsync-k8s", "meshsync-file", speedups}
    assert pinned["all"] == {"meshsync-k8s", "meshsync-nats", "meshsync-file", speedups}
    assert pinned["demo"] == {"meshsync-testkit", "meshsync-k8s", "meshsync-file", speedups}
    assert pinned["test"] == {"meshsync-testkit"}


@pytest.mark.parametrize(
    "name", ["meshsync-k8s", "meshsync-nats", "meshsync-file", "meshsync-speedups"]
)
def test_the_production_plugins_ship_no_test_support(name: str, dist: Path) -> None:
    """The fake API server, the nats-server fixture and trustme are in meshsync-testkit only:
    not a file of them in the plugin's wheel or sdist, not a line of its code naming them, and
    no requirement on trustme or on the test kit."""
    wheel = wheels(dist)[name]
    sdist = dist / f"{OURS[name]}-{VERSION}.tar.gz"
    with zipfile.ZipFile(wheel) as archive:
        files = {member: archive.read(member) for member in archive.namelist()}
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            extracted = archive.extractfile(member) if member.isfile() else None
            if extracted is not None:
                files[f"sdist:{member.name}"] = extracted.read()
    assert any(path.endswith(".py") for path in files), sorted(files)
    for path, data in files.items():
        assert not any(word in path for word in TEST_SUPPORT), f"{name}: {path}"
        if path.endswith(".py"):
            text = data.decode()
            for word in ("fake_apiserver", "meshsync_testkit", "trustme"):
                assert word not in text, f"{name}: {path} names {word}"
    for line in metadata(wheel).get("Requires-Dist", []):
        requirement = canonicalize_name(Requirement(line).name)
        assert requirement not in {"trustme", "meshsync-testkit"}, f"{name}: {line}"


def test_the_test_kit_ships_the_test_support(dist: Path) -> None:
    """What left the production plugins is in meshsync-testkit: the fake API server, its seed
    data, the nats-server fixture, the demo command, the pytest plugin (entry points included)."""
    wheel = wheels(dist)["meshsync-testkit"]
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(
            archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt")
        )
    for module in ("fake_apiserver/__init__.py", "fake_apiserver/server.py", "seed.py",
                   "nats_server.py", "demo.py", "plugin.py", "pytest_plugin.py"):  # fmt: skip
        assert f"meshsync_testkit/{module}" in names, module
    assert "meshsync_testkit = meshsync_testkit.pytest_plugin" in entry_points
    assert "testkit = meshsync_testkit.plugin" in entry_points
    requirements = {canonicalize_name(Requirement(line).name)
                    for line in metadata(wheel)["Requires-Dist"]}  # fmt: skip
    assert "trustme" in requirements


def test_the_pyprojects_take_the_version_from_one_place() -> None:
    """No pyproject writes a version: the core's comes from meshsync_core/__init__.py, and every
    plugin reads that same file."""
    core_init = (ROOT / "meshsync_core" / "__init__.py").resolve()
    plugins = [path.parent for path in (ROOT / "plugins").glob("*/pyproject.toml")]
    assert len(plugins) == len(OURS) - 1
    for project in [ROOT, *plugins]:
        config = tomllib.loads((project / "pyproject.toml").read_text())
        assert "version" not in config["project"] and "version" in config["project"]["dynamic"]
        source = project / config["tool"]["hatch"]["version"]["path"]
        assert source.resolve() == core_init, project


def test_all_compiled_code_is_in_meshsync_speedups(dist: Path) -> None:
    """One distribution holds every C extension, with one build hook and one shared JSON reader;
    the plugins that use them are pure-Python wheels that require it."""
    sources = sorted(path.relative_to(ROOT).as_posix() for path in ROOT.glob("plugins/*/**/*.[ch]"))
    assert sources == [
        "plugins/meshsync_speedups/meshsync_speedups/_meshery_message.c",
        "plugins/meshsync_speedups/meshsync_speedups/_object_meta.c",
        "plugins/meshsync_speedups/meshsync_speedups/_yaml_writer.c",
        "plugins/meshsync_speedups/meshsync_speedups/jsontext.h",
    ]
    assert sorted(path.parent.name for path in ROOT.glob("plugins/*/hatch_build.py")) == [
        "meshsync_speedups"
    ]
    built = wheels(dist)
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    with zipfile.ZipFile(built["meshsync-speedups"]) as archive:
        names = set(archive.namelist())
    for module in ("_meshery_message", "_object_meta", "_yaml_writer"):
        assert f"meshsync_speedups/{module}{suffix}" in names, sorted(names)
        assert f"meshsync_speedups/{module}.pyi" in names
    assert not built["meshsync-speedups"].name.endswith("-none-any.whl")
    sdist = dist / f"meshsync_speedups-{VERSION}.tar.gz"
    with tarfile.open(sdist) as archive:
        members = {Path(member.name).name for member in archive.getmembers()}
    assert {"jsontext.h", "_meshery_message.c", "_object_meta.c", "_yaml_writer.c",
            "hatch_build.py"} <= members  # fmt: skip
    for name in ("meshsync-k8s", "meshsync-nats", "meshsync-file"):
        assert built[name].name.endswith("-py3-none-any.whl"), built[name].name
        required = {canonicalize_name(Requirement(line).name)
                    for line in metadata(built[name])["Requires-Dist"]}  # fmt: skip
        assert "meshsync-speedups" in required, name


@pytest.mark.timeout(600)
@pytest.mark.parametrize("extra", list(EXTRAS))
async def test_pip_install_the_extra_from_the_wheelhouse_then_sync(
    extra: str, wheelhouse: Path, tmp_path: Path
) -> None:
    plugins, outputs = EXTRAS[extra]
    venv_dir = tmp_path / "venv"
    venv.create(venv_dir, with_pip=True, clear=True)
    env = clean_env(venv_dir)
    bin_dir = scripts(venv_dir)
    python = bin_dir / "python"
    run(
        [python, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", wheelhouse,
         f"meshsync[{extra}]"],
        env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip

    # Installed from the wheels, not importable from this checkout.
    where = run(
        [python, "-c", "import meshsync_core, meshsync_k8s; print(meshsync_core.__file__);"
         "print(meshsync_k8s.__file__)"],
        env=env, cwd=tmp_path,
    ).stdout.split()  # fmt: skip
    assert all(Path(path).is_relative_to(venv_dir) for path in where), where

    listed = run([bin_dir / "meshsync", "plugins", "list"], env=env, cwd=tmp_path).stdout
    rows = {line.split()[0]: line.split() for line in listed.splitlines()[1:] if line.strip()}
    assert set(rows) == {"console", *plugins}, listed
    for name in plugins:
        assert rows[name][1:3] == [f"meshsync-{name}", VERSION] and rows[name][-1] == "loaded"

    snapshot = tmp_path / "snapshot.yaml"
    server = FakeApiServer()
    server.load(demo_cluster())
    await server.start()
    try:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        with NatsServer(tmp_path / "nats") as broker:
            published: dict[str, dict] = {}
            subscriber = await nats.connect(broker.url)

            async def on_message(msg: nats.aio.msg.Msg) -> None:
                obj = orjson.loads(msg.data)["Object"]
                published[obj["metadata"]["uid"]] = obj

            await subscriber.subscribe("meshery.meshsync.core", cb=on_message)
            await subscriber.flush()
            args = ["run", "--once", "--kubeconfig", str(kubeconfig)]
            for output in outputs:
                args += ["--output", output]
            if "nats" in outputs:
                args += ["--broker-url", broker.url]
            if "file" in outputs:
                args += ["--output-file", str(snapshot), "--file-progress", "off"]
            proc = await asyncio.create_subprocess_exec(
                str(bin_dir / "meshsync"), *args, env=env, cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, err = await asyncio.wait_for(proc.communicate(), 120)
            assert proc.returncode == 0, err.decode()
            await subscriber.flush()
            await subscriber.close()
    finally:
        await server.stop()

    kube_system = ("Namespace", "kube-system")
    if "nats" in outputs:
        kinds = {(obj["kind"], obj["metadata"]["name"]) for obj in published.values()}
        assert kube_system in kinds and ("Deployment", "web") in kinds, sorted(kinds)
    if "testkit" in plugins:  # the demo extra: meshsync demo, from the installed test kit
        demo_snapshot = tmp_path / "demo.yaml"
        run(
            [bin_dir / "meshsync", "demo", "--once", "--output", "file",
             "--output-file", demo_snapshot, "--file-progress", "off"],
            env=env, cwd=tmp_path, timeout=120,
        )  # fmt: skip
        demo_docs = [doc for doc in yaml.safe_load_all(demo_snapshot.read_text()) if doc]
        assert ("Deployment", "web") in {(d["kind"], d["metadata"]["name"]) for d in demo_docs}
    if "file" in outputs:
        docs = [doc for doc in yaml.safe_load_all(snapshot.read_text()) if doc]
        kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in docs}
        assert kube_system in kinds and ("Deployment", "web") in kinds, sorted(kinds)
        if "nats" in outputs:  # both sinks saw the same cluster
            assert {doc["metadata"]["uid"] for doc in docs} == set(published)
