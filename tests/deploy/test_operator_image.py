"""The image under Meshery Operator's Deployment, without a Docker engine.

Meshery Operator runs ``command: ["./meshery-meshsync"]`` with no ``workingDir`` and no
``args`` (tests/deploy/operator_meshsync_deployment.yaml), so the image's WORKDIR must hold an
executable ``meshery-meshsync`` taking Go's flags; older versions' liveness probe runs
``./meshery-meshsync -h``. It must also run as the image's non-root USER on a read-only root
filesystem.

How this is tested, and what it proves:

* The Dockerfile is parsed here (its stages, ENV, USER, WORKDIR, RUN steps); hadolint lints it
  in test_deploy_files.py.
* Its install steps are replayed into a directory ``R`` standing for the image's ``/``: the
  build context is copied as its COPY lines say (honouring .dockerignore), the build stage's
  ``pip wheel`` line runs in it (third-party wheels from a local wheelhouse instead of the
  index, build requirements from this environment), a virtualenv at ``R/usr/local`` takes the
  runtime stage's ``pip install`` line, and the RUN's ``ln -s`` makes ``R/meshery-meshsync``.
* Then ``./meshery-meshsync`` runs from ``R`` (the WORKDIR) with the Dockerfile's ENV, as the
  Dockerfile's USER (uid 10001, via setpriv), in a mount namespace where the whole root
  filesystem is remounted read-only (``/tmp`` included, as in the Operator's Deployment, which
  mounts no emptyDir): ``-h`` exits 0, and a real run syncs the fake API server to a real
  nats-server, is listed in ``/connz`` as ``meshsync``, answers both probes and stops on SIGTERM
  with exit 0.

Not proven: the base image itself. The interpreter is this machine's (a Python of the same
minor version whose path the non-root user can reach), not python:3.12-slim's, and the paths
are under ``R`` rather than ``/`` (no chroot: the interpreter lives outside ``R``). That pip puts
console scripts in ``/usr/local/bin`` in the real image is the official python images' layout
(Python installed under ``/usr/local``), checked here only as "the Dockerfile's base is such an
image" and "the replica's scripts directory is ``R/usr/local/bin``". Whether the container
runtime resolves ``./meshery-meshsync`` against the WORKDIR is runc's behaviour (a command
with a slash is exec'd relative to the process's working directory), reproduced here by exec'ing
it the same way.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import Parser
from pathlib import Path

import pytest
from meshsync_testkit.fake_apiserver import FakeApiServer, demo_cluster
from meshsync_testkit.nats_server import free_port
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.integration.meshery_checks import (
    connz_names,
    http_get,
    monitored_nats,
    operator_token,
    probe_ok,
    start,
    stop,
    token_url,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
OURS = {"meshsync", "meshsync-k8s", "meshsync-nats", "meshsync-file", "meshsync-speedups"}

pytestmark = pytest.mark.timeout(600)


# -- the Dockerfile, parsed ------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [rest for key, rest in self.instructions if key == keyword]

    def last(self, keyword: str) -> str:
        values = self.all(keyword)
        assert values, f"no {keyword} in the stage FROM {self.base}"
        return values[-1]

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for rest in self.all("ENV"):
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                out[key] = value
        return out

    def run_commands(self) -> list[list[str]]:
        """Every command of every RUN, split at ``&&``, as argv lists."""
        commands = []
        for rest in self.all("RUN"):
            for part in rest.split("&&"):
                commands.append(shlex.split(part))
        return commands


def parse_dockerfile(text: str) -> list[Stage]:
    instructions: list[tuple[str, str]] = []
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not buffer and not line):
            continue  # comments may also sit between continuation lines
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _, rest = buffer.partition(" ")
        instructions.append((keyword.upper(), " ".join(rest.split())))
        buffer = ""
    stages: list[Stage] = []
    for keyword, rest in instructions:
        if keyword == "FROM":
            stages.append(Stage(rest.split()[0]))
        else:
            assert stages, "an instruction before the first FROM"
            stages[-1].instructions.append((keyword, rest))
    return stages


STAGES = parse_dockerfile((ROOT / "Dockerfile").read_text())
BUILD, RUNTIME = STAGES[0], STAGES[-1]


def link_step() -> tuple[str, str]:
    """(target, link) of the runtime stage's ``ln -s``."""
    links = [cmd for cmd in RUNTIME.run_commands() if cmd[:2] == ["ln", "-s"]]
    assert len(links) == 1, links
    return links[0][2], links[0][3]


def test_the_runtime_stage_has_gos_layout_non_root_and_read_only_ready() -> None:
    workdir = RUNTIME.last("WORKDIR")
    assert workdir == "/"  # Go MeshSync's image: WORKDIR /, the binary at /meshery-meshsync
    target, link = link_step()
    assert link == "/meshery-meshsync" and os.path.dirname(link) == workdir
    # a relative target: /usr/local/bin/meshery-meshsync, where pip puts the console script
    assert not target.startswith("/")
    assert os.path.normpath(os.path.join(workdir, target)) == "/usr/local/bin/meshery-meshsync"
    assert RUNTIME.base.startswith("python:") and RUNTIME.base.endswith("-slim")
    user = RUNTIME.last("USER")
    assert user.isdigit() and int(user) != 0
    env = RUNTIME.env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    for variable in ("HOME", "XDG_CACHE_HOME"):
        assert env[variable] == "/tmp" or env[variable].startswith("/tmp/"), variable
    assert "11000" in RUNTIME.all("EXPOSE")
    # `meshsync run ...` stays the image's default for our own manifests
    assert json.loads(RUNTIME.last("ENTRYPOINT")) == ["meshsync"]


# -- the install steps, replayed -------------------------------------------------------------


def _dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _ignored(relative: str, patterns: list[str]) -> bool:
    name = relative.rsplit("/", 1)[-1]
    for pattern in patterns:
        if fnmatch.fnmatch(relative, pattern) or relative.startswith(pattern + "/"):
            return True
        if pattern.startswith("**/") and fnmatch.fnmatch(name, pattern[3:]):
            return True
    return False


def copy_context(destination: Path) -> None:
    """The build stage's COPY lines, from the repository, as the build context gives them."""
    patterns = _dockerignore()
    for rest in BUILD.all("COPY"):
        *sources, target = shlex.split(rest)
        for source in sources:
            src = ROOT / source
            assert not _ignored(source, patterns), f"COPY {source} is in .dockerignore"
            dest = destination / target / (src.name if target.endswith("/") else "")
            if src.is_dir():

                def ignore(directory: str, names: list[str]) -> set[str]:
                    base = Path(directory).relative_to(ROOT).as_posix()
                    return {n for n in names if _ignored(f"{base}/{n}", patterns)}

                shutil.copytree(src, dest, ignore=ignore)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)


def pip_line(stage: Stage, subcommand: str) -> list[str]:
    lines = [cmd for cmd in stage.run_commands() if cmd[:2] == ["pip", subcommand]]
    assert len(lines) == 1, f"one `pip {subcommand}` in the stage FROM {stage.base}: {lines}"
    return lines[0][2:]


def _requirements(wheel_dir: Path) -> set[str]:
    """Third-party requirements of our wheels (what tests/packaging keys its wheelhouse by)."""
    out: set[str] = set()
    for wheel in wheel_dir.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            message = Parser().parsestr(archive.read(name).decode())
        for line in message.get_all("Requires-Dist") or []:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) in OURS:
                continue
            if requirement.marker is None or requirement.marker.evaluate({"extra": "all"}):
                out.add(str(requirement))
    return out


def third_party_wheels(requirements: set[str], config: pytest.Config, scratch: Path) -> Path:
    """Wheels of ``requirements``, downloaded once into the pytest cache (shared with
    tests/packaging/test_distributions.py, which keys its wheelhouse the same way)."""
    lock = "\n".join([sys.version, sysconfig.get_platform(), *sorted(requirements)])
    key = hashlib.sha256(lock.encode()).hexdigest()[:16]
    cache = getattr(config, "cache", None)
    house = cache.mkdir(f"wheelhouse-{key}") if cache is not None else scratch / "wheelhouse"
    done = house / "complete"
    if not done.exists():
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(house),
              *sorted(requirements)], timeout=600)  # fmt: skip
        done.write_text(lock)
    return house


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        pytest.fail(
            f"{shlex.join(argv)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}",
            pytrace=False,
        )
    return result


def _reachable_by_others(path: Path) -> bool:
    """Whether a user other than root can execute ``path`` (every parent searchable)."""
    path = path.resolve()
    if not os.stat(path).st_mode & 0o001:
        return False
    return all(os.stat(parent).st_mode & 0o001 for parent in path.parents)


def image_python() -> Path | None:
    """An interpreter of this minor version that the image's non-root user could run."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [
        Path(getattr(sys, "_base_executable", sys.executable)),
        Path(f"/usr/bin/python{version}"),
        Path(f"/usr/local/bin/python{version}"),
    ]
    for candidate in candidates:
        if candidate.exists() and _reachable_by_others(candidate):
            probe = subprocess.run(
                [str(candidate), "-c", "import sys, venv; print(sys.version_info[:2])"],
                capture_output=True,
                text=True,
            )
            if probe.returncode == 0 and probe.stdout.strip() == str(sys.version_info[:2]):
                return candidate
    return None


@dataclass
class ImageRoot:
    root: Path  # stands for the image's "/"
    env: dict[str, str]  # the Dockerfile's ENV with the image's PATH
    uid: int

    @property
    def workdir(self) -> Path:
        return self.root / RUNTIME.last("WORKDIR").lstrip("/")


@pytest.fixture(scope="module")
def image_root(request: pytest.FixtureRequest) -> Iterator[ImageRoot]:
    python = image_python()
    if python is None:
        pytest.skip(
            "no Python of this minor version that a non-root user can execute "
            f"(looked for python{sys.version_info.major}.{sys.version_info.minor})"
        )
    scratch = Path(tempfile.mkdtemp(prefix="meshsync-image-"))
    try:
        scratch.chmod(0o755)  # the image's user must reach everything in it
        root = scratch / "root"
        root.mkdir()
        # build stage: COPY, then its `pip wheel` line (our wheels first, to learn the
        # third-party requirements; then the line itself, with those from the local wheelhouse)
        context = scratch / "src"
        copy_context(context)
        wheel_args = pip_line(BUILD, "wheel")
        assert "--wheel-dir" in wheel_args
        wheel_dir = wheel_args[wheel_args.index("--wheel-dir") + 1]
        ours = scratch / "ours"
        mapped = [str(ours) if arg == wheel_dir else arg for arg in wheel_args]
        pip = [sys.executable, "-m", "pip"]
        _run([*pip, "wheel", "--no-deps", "--no-build-isolation", *mapped], cwd=context,
             timeout=300)  # fmt: skip
        house = third_party_wheels(_requirements(ours), request.config, scratch)
        wheels = scratch / "wheels"
        mapped = [str(wheels) if arg == wheel_dir else arg for arg in wheel_args]
        offline = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(house)}
        _run([*pip, "wheel", "--no-build-isolation", *mapped], cwd=context, env=offline,
             timeout=300)  # fmt: skip
        # runtime stage: /usr/local's Python takes the `pip install` line, then `ln -s`
        prefix = root / "usr" / "local"
        _run([str(python), "-m", "venv", "--without-pip", str(prefix)])
        target_python = prefix / "bin" / "python"
        install_args = []
        for arg in pip_line(RUNTIME, "install"):
            if arg == wheel_dir:
                install_args.append(str(wheels))
            elif arg == f"{wheel_dir}/*.whl":
                install_args.extend(sorted(str(w) for w in wheels.glob("*.whl")))
            else:
                install_args.append(arg)
        _run([*pip, "--python", str(target_python), "install", "--quiet", *install_args],
             timeout=300)  # fmt: skip
        scripts = _run(
            [str(target_python), "-c", "import sysconfig; print(sysconfig.get_path('scripts'))"]
        ).stdout.strip()
        assert Path(scripts) == prefix / "bin"  # /usr/local/bin in the image
        target, link = link_step()
        (root / link.lstrip("/")).symlink_to(target)
        env = dict(RUNTIME.env())
        env["PATH"] = f"{prefix / 'bin'}:/usr/bin:/bin"
        yield ImageRoot(root, env, int(RUNTIME.last("USER")))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# -- running it read-only, as the image's user -----------------------------------------------

_READ_ONLY = (
    'mount -o remount,bind,ro / && exec setpriv --reuid="$0" --regid="$0" --clear-groups -- "$@"'
)


def read_only(argv: list[str], uid: int) -> list[str]:
    """``argv`` as ``uid``, in a mount namespace whose root filesystem is read-only.

    unshare and setpriv exec (no fork), so the process started is the program itself: a
    SIGTERM sent to it reaches it as the kubelet's would.
    """
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", _READ_ONLY,
            str(uid), *argv]  # fmt: skip


def assert_isolated(pid: int, uid: int) -> None:
    """The running process is ``uid`` (real, effective, saved) and sees ``/`` read-only."""
    status = Path(f"/proc/{pid}/status").read_text()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert set(uids) == {str(uid)}, status
    mounts = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    root = [line.split() for line in mounts if line.split()[4] == "/"]
    assert root and "ro" in root[-1][5].split(","), root


@pytest.fixture(scope="module")
def can_isolate() -> None:
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("setpriv")):
        pytest.skip("needs root with unshare and setpriv to remount / read-only for one process")
    check = subprocess.run(
        read_only(["sh", "-c", "touch /tmp/meshsync-ro-check"], 10001),
        capture_output=True,
        text=True,
    )
    if "Read-only file system" not in check.stderr:
        pytest.skip(f"cannot make a read-only mount namespace here: {check.stderr.strip()}")


def test_dot_slash_meshery_meshsync_h_exits_0_read_only_as_the_image_user(
    image_root: ImageRoot, can_isolate: None
) -> None:
    result = subprocess.run(
        read_only(["./meshery-meshsync", "-h"], image_root.uid),
        capture_output=True,
        text=True,
        cwd=image_root.workdir,
        env=image_root.env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage of meshery-meshsync:")
    for flag in ("-broker-url", "-output", "-outputFile", "-outputNamespaces",
                 "-outputResources", "-stopAfter"):  # fmt: skip
        assert f"  {flag} " in result.stdout
    assert result.stderr == ""


def test_the_image_has_the_runtime_plugins_only(image_root: ImageRoot, can_isolate: None) -> None:
    result = subprocess.run(
        read_only(["meshsync", "plugins", "list", "--json"], image_root.uid),
        capture_output=True,
        text=True,
        cwd=image_root.workdir,
        env=image_root.env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    plugins = {info["name"]: info["status"] for info in json.loads(result.stdout)}
    assert plugins == {name: "loaded" for name in ("console", "k8s", "nats", "file")}


def test_a_real_run_read_only_as_the_image_user_is_connected_and_probed(
    image_root: ImageRoot, can_isolate: None, tmp_path: Path
) -> None:
    """The Operator's way: ``./meshery-meshsync``, no arguments, BROKER_URL with the token."""
    readable = Path(tempfile.mkdtemp(prefix="meshsync-kubeconfig-"))
    readable.chmod(0o755)
    token = operator_token()
    health = free_port()
    try:
        with (
            FakeApiServer.in_thread() as server,
            monitored_nats(tmp_path / "nats", token=token) as (nats_server, monitor),
        ):
            server.load(demo_cluster())
            kubeconfig = server.write_kubeconfig(readable / "kubeconfig")
            kubeconfig.chmod(0o644)
            env = {
                **image_root.env,
                "KUBECONFIG": str(kubeconfig),
                "BROKER_URL": token_url(nats_server, token),
                "MESHSYNC_HEALTH_PORT": str(health),
            }
            proc = start(read_only(["./meshery-meshsync"], image_root.uid), env,
                         cwd=image_root.workdir)  # fmt: skip
            base = f"http://127.0.0.1:{health}"
            try:
                wait_until(lambda: probe_ok(http_get(f"{base}/healthz")[0]), "/healthz", 60, proc)
                assert_isolated(proc.pid, image_root.uid)
                wait_until(lambda: probe_ok(http_get(f"{base}/readyz")[0]), "/readyz", 60, proc)
                assert wait_until(lambda: connz_names(monitor), "/connz", proc=proc) == ["meshsync"]
            finally:
                code, out, err = stop(proc)
    finally:
        shutil.rmtree(readable, ignore_errors=True)
    assert code == 0, err
    for trouble in ("Read-only file system", "Permission denied", "Traceback"):
        assert trouble not in out + err
    assert "initial sync complete" in err
