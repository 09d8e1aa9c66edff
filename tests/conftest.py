"""Fixtures for the suite's own tests."""

from __future__ import annotations

import fcntl
import json
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# The tiers: unit/ (no root, no container, no network: ./lxcc test --unit), real/ (real
# LXC, dnsmasq, bridges, sshd, LXD), and support/ (the helpers both import by name).
sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))

pytest_plugins = ["pytester", "lab"]

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(__file__).resolve().parent / ".cache"
DEBIAN_CONFIG_PACKAGES = ("linux-config-6.1", "linux-config-6.12")


def pytest_collection_modifyitems(config, items):
    """The tests that hold the host alone first (most are one xdist group: one worker runs
    them back to back while the other runs tests that hold nothing), then those, then the
    ones that hold it shared, which then run beside each other. Otherwise each test that
    holds it alone waits for a shared one of the other worker, and the shared ones never
    meet (a CI run: 24 min, the exclusive ones' setups waiting up to 100 s each). ./lxcc test
    passes --no-loadscope-reorder, or xdist would hand out the largest groups first."""
    def order(item) -> int:
        if item.get_closest_marker("changes_host"):
            return 0
        return 2 if item.get_closest_marker("shares_host") else 1

    items.sort(key=order)


def _download_debian_configs() -> list[Path]:
    """Debian's own kernel configs (three flavours per package), unpacked once.

    xdist workers share the cache: one downloads under a lock, into a temporary
    directory renamed into place when complete; the others wait and reuse it.
    """
    out = CACHE / "debian-configs"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not out.is_dir():
            work = Path(tempfile.mkdtemp(dir=CACHE, prefix=".download-"))
            try:
                _fetch_into(work)
                (work / "configs").rename(out)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    return sorted(p for p in out.iterdir() if not p.name.startswith("."))


def _fetch_into(work: Path) -> None:
    debs, configs = work / "debs", work / "configs"
    debs.mkdir()
    configs.mkdir()
    download = ["apt-get", "download", *DEBIAN_CONFIG_PACKAGES]
    if subprocess.run(download, cwd=debs, capture_output=True, timeout=300).returncode != 0:
        # A fresh machine may never have fetched its package lists.
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True, timeout=600)
        subprocess.run(download, cwd=debs, check=True, capture_output=True, timeout=300)
    for deb in debs.glob("*.deb"):
        unpacked = debs / deb.stem
        subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True, timeout=120)
        for packed in unpacked.rglob("config.*.xz"):
            package = deb.name.split("_")[0]
            (configs / f"{package}-{packed.name[7:-3]}").write_bytes(lzma.decompress(packed.read_bytes()))


@pytest.fixture(scope="session")
def debian_configs() -> list[Path]:
    """Real Debian kernel configs (amd64: 6.1 and 6.12, generic, cloud and rt)."""
    configs = _download_debian_configs()
    assert len(configs) >= 6, f"expected six Debian configs, got {[c.name for c in configs]}"
    return configs


@pytest.fixture(scope="session")
def lxc_checkconfig() -> str:
    """Path of Debian's real lxc-checkconfig; fails (not skips) without it: CI installs lxc."""
    path = shutil.which("lxc-checkconfig")
    assert path, "lxc-checkconfig is not installed: apt-get install lxc"
    return path


# Each lxc-checkconfig release the suite reproduces, from the Debian release that ships it.
CHECKCONFIG_RELEASES = {"5.0": "bookworm", "6.0": "trixie"}


def debian_package_file(suite: str, package: str, member: str) -> Path:
    """MEMBER (a path inside the package) of Debian SUITE's PACKAGE, downloaded once with an apt
    state of its own (the machine's sources, lists and installed packages are not touched)."""
    out = CACHE / f"{suite}-{package}" / member.lstrip("/")
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.is_file():
            return out
        work = Path(tempfile.mkdtemp(dir=CACHE, prefix=".apt-"))
        try:
            (work / "sources").mkdir()
            (work / "sources" / f"{suite}.sources").write_text(
                f"Types: deb\nURIs: http://deb.debian.org/debian\nSuites: {suite}\nComponents: main\n"
                "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
            apt = ["apt-get", "-qq", "-o", "Dir::Etc::SourceList=/dev/null", "-o", f"Dir::Etc::SourceParts={work}/sources",
                   "-o", f"Dir::State::Lists={work}/lists", "-o", f"Dir::Cache={work}/cache",
                   "-o", "Dir::State::status=/dev/null", "-o", "APT::Sandbox::User=root"]
            (work / "lists" / "partial").mkdir(parents=True)
            subprocess.run([*apt, "update"], check=True, capture_output=True, timeout=300)
            subprocess.run([*apt, "download", package], cwd=work, check=True, capture_output=True, timeout=300)
            deb = next(work.glob(f"{package}_*.deb"))
            subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "unpacked")], check=True, timeout=120)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(work / "unpacked" / member.lstrip("/"), out)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return out


@pytest.fixture(scope="session")
def checkconfig_scripts() -> dict[str, Path]:
    """Release ('5.0', '6.0') -> the real lxc-checkconfig of the Debian release that ships it."""
    return {release: debian_package_file(suite, "lxc", "/usr/bin/lxc-checkconfig")
            for release, suite in CHECKCONFIG_RELEASES.items()}


def run_real_script(script: str, config: Path) -> list[str]:
    """stdout lines of the real lxc-checkconfig for CONFIG (not a tty: no colours), its own
    path in the closing note written as where Debian installs it."""
    done = subprocess.run(
        ["sh", str(script)], env={**os.environ, "CONFIG": str(config)}, capture_output=True, text=True,
        errors="replace", timeout=60,
    )
    return done.stdout.replace(str(script), "/usr/bin/lxc-checkconfig").split("\n")[:-1]


# This machine's cgroups as a unified host has them, for real, in a private mount namespace:
# the v1 hierarchies unmounted there and cgroup2 mounted at /sys/fs/cgroup. The controllers
# bound to v1 outside (memory, pids, cpu...) stay bound: its cgroup2 offers hugetlb alone,
# as a unified host whose memory controller is not delegated. The host's mounts are untouched.
UNIFIED_VIEW = ("unshare", "--mount", "--propagation", "private", "sh", "-c",
                'umount -R /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec "$@"', "unified-view")


class Suite:
    """Runs the compliance suite as a user would, in a subprocess."""

    def __init__(self, report_dir: Path) -> None:
        self.report_dir = report_dir

    def run(self, *args: str, timeout: int = 300, env: dict | None = None, user: str | None = None,
            prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        """pytest ARGS in the project, with ENV added to the environment, as USER when given
        (through the system's python3 and the project's packages: the virtualenv's own
        interpreter may live where other users cannot reach it), behind PREFIX (a command
        that ends by running its arguments, like UNIFIED_VIEW)."""
        python, project = [*prefix, sys.executable], ROOT
        environment = {**os.environ, **(env or {})}
        if user is not None:
            python = ["runuser", "-u", user, "--", "/usr/bin/python3"]
            project, environment["PYTHONPATH"] = _readable_project(user)
        command = [*python, "-m", "pytest", f"--report-dir={self.report_dir}", *args]
        return subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=timeout, env=environment)

    def results(self, profile: str = "kernel") -> dict:
        return json.loads((self.report_dir / f"{profile}.json").read_text())


@pytest.fixture
def suite(tmp_path: Path) -> Suite:
    """The suite, writing its reports into a temporary directory."""
    return Suite(tmp_path / "reports")


_COPIES: dict[str, tuple[Path, str]] = {}


def _readable_project(user: str) -> tuple[Path, str]:
    """The project and its packages where USER can read them: in place, or (a clone
    under root's home, say) a copy in a world-readable directory, made once."""
    import atexit
    import sysconfig

    packages = sysconfig.get_paths()["purelib"]
    readable = subprocess.run(["runuser", "-u", user, "--", "test", "-r", str(ROOT / "pyproject.toml"), "-a",
                               "-r", f"{packages}/pytest/__init__.py"], capture_output=True).returncode == 0
    if readable:
        return ROOT, packages
    if user not in _COPIES:
        copy = Path(tempfile.mkdtemp(prefix="lxcct-project-"))
        atexit.register(shutil.rmtree, copy, ignore_errors=True)
        copy.chmod(0o755)
        ignore = shutil.ignore_patterns(".venv", ".git", ".cache", "reports", "__pycache__")
        shutil.copytree(ROOT, copy / "project", ignore=ignore)
        shutil.copytree(packages, copy / "site-packages", ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run(["chmod", "-R", "a+rX", str(copy)], check=True)
        _COPIES[user] = (copy / "project", str(copy / "site-packages"))
    return _COPIES[user]
