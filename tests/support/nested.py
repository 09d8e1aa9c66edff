"""Another Debian release on this machine, for real: a privileged nesting container
whose userland is that release (lxc-create -t debian: debootstrap), with its own LXC
and the suite installed as a user installs it, audited from inside with lxc-attach.

Packages come from Debian's and PyPI's registries through the host's own network and
settings, in a chroot of the stopped container (the container itself has no network:
``lxc.net.0.type = empty``; the bridges its lab builds live in its own namespace).
Registered for teardown before it is created; everything is destroyed at the end.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from conftest import ROOT

LXC_PATH = Path("/var/lib/lxc")
# What ./lxcc installs, there from the start (the container cannot reach a registry itself).
PACKAGES = ("lxc", "lxc-templates", "rsync", "python3-lxc", "python3-venv", "debootstrap", "dnsmasq-base", "dnsmasq-utils",
            "iproute2", "nftables", "iptables", "openssl", "uidmap", "libpam-cgfs", "xz-utils")
PROJECT = "/root/lxc-compliance"
# The outer LXC (5.0) mounts no separate cpu and cpuacct hierarchies for a container unless
# forced; the nested LXC cannot set up its cgroups without them (found on this machine).
# /proc/sys stays read-only but for its own network: a privileged container's systemd-sysctl
# would otherwise apply its release's sysctl.d to this machine (Debian 13's raised
# fs.inotify.max_user_instances and vm.max_map_count here once).
NESTING = ("lxc.include = /usr/share/lxc/config/nesting.conf\n"
           "lxc.mount.auto = proc:mixed sys:mixed cgroup:rw:force\n"
           "lxc.apparmor.profile = unconfined\n")


class NestedHost:
    """A RELEASE ('trixie', 'bookworm') container host inside this one."""

    def __init__(self, release: str) -> None:
        self.release = release
        self.name = f"lxcct-nest-{uuid.uuid4().hex[:6]}"

    @property
    def rootfs(self) -> Path:
        return LXC_PATH / self.name / "rootfs"

    @property
    def config(self) -> Path:
        return LXC_PATH / self.name / "config"

    def __enter__(self) -> "NestedHost":
        try:
            self._create()
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.destroy()

    def destroy(self) -> None:
        """Tolerant: whatever part of it exists goes."""
        subprocess.run(["lxc-stop", "-n", self.name, "-k"], capture_output=True, timeout=60)
        for sub in ("proc", "sys", "dev"):
            subprocess.run(["umount", "-l", str(self.rootfs / sub)], capture_output=True, timeout=30)
        subprocess.run(["lxc-destroy", "-n", self.name, "-f"], capture_output=True, timeout=300)
        shutil.rmtree(LXC_PATH / self.name, ignore_errors=True)

    def _create(self) -> None:
        subprocess.run(["lxc-create", "-t", "debian", "-n", self.name, "--", "-r", self.release,
                        f"--packages={','.join(PACKAGES)}"], check=True, capture_output=True, timeout=900)
        lines = [line for line in self.config.read_text().splitlines()
                 if not line.startswith(("lxc.net.0.", "lxc.cgroup.memory", "lxc.cgroup2.memory"))]
        self.config.write_text("\n".join(lines) + "\nlxc.net.0.type = empty\n" + NESTING)
        # Its own lxc-net would want a NATed lxcbr0: the suite builds the bridges it needs.
        (self.rootfs / "etc/default/lxc-net").write_text('USE_LXC_BRIDGE="false"\n')
        # Its sysctls are this machine's: systemd-sysctl must not apply the release's defaults.
        (self.rootfs / "etc/systemd/system/systemd-sysctl.service").symlink_to("/dev/null")
        target = self.rootfs / PROJECT.lstrip("/")
        files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout.split(b"\0")
        for name in filter(None, (f.decode() for f in files)):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
        # The suite installs its Python packages as on any machine (the first run does).
        self.in_chroot(f"cd {PROJECT} && ./lxcc --profile=kernel --collect-only -q", timeout=900)

    def in_chroot(self, command: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return in_chroot(self.rootfs, command, timeout)

    def start(self) -> None:
        subprocess.run(["lxc-start", "-n", self.name], check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # systemd up (degraded counts: no network units can start)
            state = self.run("systemctl is-system-running", timeout=30).stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(1)
        raise AssertionError(f"{self.name}: systemd did not finish booting in 90 s ({state})")

    def stop(self) -> None:
        subprocess.run(["lxc-stop", "-n", self.name, "-t", "30"], check=True, capture_output=True, timeout=90)

    def run(self, command: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """COMMAND inside, as root, in a login-like environment."""
        return subprocess.run(["lxc-attach", "-n", self.name, "--clear-env", "--set-var", "HOME=/root",
                               "--set-var", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "--", "sh", "-c", command],
                              capture_output=True, text=True, timeout=timeout)

    def lxcc(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return self.run(f"cd {PROJECT} && ./lxcc {' '.join(args)}", timeout=timeout)

    def results(self, profile: str, report_dir: str = f"{PROJECT}/reports") -> dict:
        """A run's results file inside (REPORT_DIR as the run's --report-dir named it)."""
        return json.loads((self.rootfs / report_dir.lstrip("/") / f"{profile}.json").read_text())

    def put(self, relative: str, text: str) -> str:
        """A file of the test's own inside (a profile), by its path there."""
        path = self.rootfs / relative.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return "/" + relative.lstrip("/")

    def copy_container(self, source: Path) -> None:
        """A container of this machine (the lab's gold) into its /var/lib/lxc, as it is."""
        subprocess.run(["cp", "-a", str(source), str(self.rootfs / "var/lib/lxc" / source.name)], check=True,
                       timeout=600)

    def upgrade_to(self, release: str) -> subprocess.CompletedProcess:
        """Debian's documented upgrade: the sources to RELEASE, apt full-upgrade; then booted again."""
        self.stop()
        sources = self.rootfs / "etc/apt/sources.list"
        sources.write_text(sources.read_text().replace(self.release, release))
        for extra in (self.rootfs / "etc/apt/sources.list.d").glob("*"):
            extra.write_text(extra.read_text().replace(self.release, release))
        done = self.in_chroot("apt-get update -qq && apt-get full-upgrade -y -qq "
                              "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold", timeout=1500)
        # The first run after the upgrade makes the suite's virtualenv anew for the new Python.
        self.in_chroot(f"cd {PROJECT} && ./lxcc --profile=kernel --collect-only -q", timeout=900)
        self.release = release
        self.start()
        return done


def cgroup_layout_here() -> str:
    """This machine's layout, which every nested host shares."""
    from lxc_compliance.readers.cgroups import Cgroups

    return Cgroups.live().layout


@contextmanager
def _chroot(rootfs: Path):
    """A stopped container's root as a chroot with the host's network and CA bundle."""
    ca = rootfs / "tmp/host-ca.crt"
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", ca)
    shutil.copy("/etc/resolv.conf", rootfs / "etc/resolv.conf")
    mounted = []
    try:
        for sub in ("proc", "sys", "dev"):
            subprocess.run(["mount", "--bind", f"/{sub}", str(rootfs / sub)], check=True, timeout=30)
            mounted.append(sub)
        yield
    finally:
        for sub in reversed(mounted):
            subprocess.run(["umount", "-l", str(rootfs / sub)], capture_output=True, timeout=30)
        ca.unlink(missing_ok=True)


def in_chroot(rootfs: Path, command: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """COMMAND in a chroot of ROOTFS (a stopped container of the test's own), through the host's network."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
           "DEBIAN_FRONTEND": "noninteractive", "PIP_CERT": "/tmp/host-ca.crt", "SSL_CERT_FILE": "/tmp/host-ca.crt"}
    with _chroot(rootfs):
        done = subprocess.run(["chroot", str(rootfs), "sh", "-c", command], env=env, capture_output=True,
                              text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done
