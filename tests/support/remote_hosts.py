"""Containers acting as remote hosts for --hosts: each a copy of the lab's gold
with sshd, a root key, a static address on the test's own bridge and a hostname
of its own, reached through an ssh config and known_hosts of the test's own
(nothing is written to root's ~/.ssh)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lxc_compliance.lab.lxc import destroy_container
from lxc_compliance.lab.samples import STATIC_INTERFACES, join_bridge, random_mac
from lxc_compliance.readers.lxc import ROOT_LXC

SSHD_WAIT_S = 90


@dataclass
class SshHost:
    container: str
    hostname: str
    address: str

    @property
    def spec(self) -> str:
        return f"ssh://root@{self.address}"


def with_uidmap_helpers(rootfs: Path) -> None:
    """newuidmap and newgidmap as Debian's uidmap installs them (setuid root)."""
    for program in ("newuidmap", "newgidmap"):
        target = rootfs / "usr/bin" / program
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f"/usr/bin/{program}", target)
        target.chmod(0o4755)


def _wait_for_sshd(address: str) -> None:
    deadline = time.monotonic() + SSHD_WAIT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((address, 22), timeout=2) as connection:
            connection.settimeout(2)
            if connection.recv(64).startswith(b"SSH-"):
                return
        time.sleep(0.5)
    raise TimeoutError(f"no sshd answered on {address}:22 within {SSHD_WAIT_S} s")


@contextlib.contextmanager
def ssh_hosts(gold, network, folder: Path, variants: dict[str, Callable[[Path], None]], unknown_key: set[str] = frozenset(),
              first: int = 1):
    """One container per VARIANTS entry (hostname -> what to change in its root
    filesystem), started and answering ssh, the first at .100+FIRST of the network;
    yields (hosts, ssh config path). Hosts named in UNKNOWN_KEY are left out of known_hosts."""
    folder.mkdir(parents=True, exist_ok=True)
    key = folder / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
    known_hosts = folder / "known_hosts"
    known_hosts.touch()
    config = folder / "ssh_config"
    config.write_text(f"Host *\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
                      f"  UserKnownHostsFile {known_hosts}\n  GlobalKnownHostsFile /dev/null\n"
                      "  StrictHostKeyChecking yes\n  LogLevel ERROR\n")
    run = uuid.uuid4().hex[:6]
    hosts = []
    with contextlib.ExitStack() as cleanup:
        for number, (hostname, change) in enumerate(variants.items(), start=first):
            name = f"lxcc-rh-{run}-{number}"
            address = str(network.subnet.network_address + 100 + number)
            cleanup.callback(destroy_container, ROOT_LXC, name)  # registered before it exists
            subprocess.run(["lxc-copy", "-n", gold.name, "-N", name, "-s", "-B", "overlay"], check=True,
                           capture_output=True, timeout=300)
            config_path = ROOT_LXC.config_path(name)
            join_bridge(config_path, network.bridge, random_mac("52:56"), f"{address}/{network.subnet.prefixlen}")
            rootfs = ROOT_LXC.rootfs(name)
            (rootfs / "etc/network").mkdir(parents=True, exist_ok=True)
            (rootfs / "etc/network/interfaces").write_text(STATIC_INTERFACES)
            (rootfs / "etc/hostname").write_text(hostname + "\n")
            ssh_dir = rootfs / "root/.ssh"
            ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            ssh_dir.chmod(0o700)
            (ssh_dir / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
            (ssh_dir / "authorized_keys").chmod(0o600)
            change(rootfs)
            subprocess.run(["lxc-start", "-n", name], check=True, capture_output=True, timeout=60)
            hosts.append(SshHost(name, hostname, address))
        for host in hosts:
            _wait_for_sshd(host.address)
            if host.hostname in unknown_key:
                continue
            scanned = subprocess.run(["ssh-keyscan", "-T", "5", host.address], capture_output=True, text=True,
                                     timeout=30).stdout
            with open(known_hosts, "a") as known:
                known.write(scanned)
        yield hosts, config
