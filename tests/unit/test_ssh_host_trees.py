"""SshHost's read-ahead of file trees: a container's files read in one stream are
answered from it, absent ones too, with no command per file (what a fleet on
--hosts costs), and read as GuestFiles reads them on this machine."""

from __future__ import annotations

import shlex
import subprocess
from types import SimpleNamespace

import pytest

from lxc_compliance.readers.guest import GUEST_PATHS, GuestFiles
from lxc_compliance.readers.machine import THIS_HOST
from lxc_compliance.readers.machine_ssh import SshHost

pytestmark = pytest.mark.unit


class ShellConnection:
    """testinfra's run on this machine (its arguments quoted into the command), counted."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def run(self, command: str, *args: str):
        line = command % tuple(shlex.quote(a) for a in args) if args else command
        self.commands.append(line)
        done = subprocess.run(["sh", "-c", line], capture_output=True, timeout=60)
        return SimpleNamespace(rc=done.returncode, stdout_bytes=done.stdout, stderr_bytes=done.stderr)


def _rootfs(tmp_path):
    root = tmp_path / "rootfs"
    for relative, text in {"etc/hostname": "pc7\n", "etc/machine-id": "\n",
                           "etc/network/interfaces": "auto eth0\niface eth0 inet static\n  address 10.9.0.7/24\n",
                           "etc/ssh/ssh_host_ed25519_key.pub": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0Sd"
                                                               "G6UOoqKLsabgH5C9okWi0dh2l9GKJl root@h\n",
                           "etc/ssh/ssh_host_ed25519_key": "private\n",
                           "etc/systemd/system/keys.service": "[Service]\nExecStart=/usr/bin/ssh-keygen -A\n",
                           "etc/pam.d/sshd": "session required pam_loginuid.so\n"}.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    (root / "etc/systemd/system/multi-user.target.wants").mkdir()
    (root / "etc/systemd/system/multi-user.target.wants/keys.service").symlink_to("/etc/systemd/system/keys.service")
    return root


def test_a_root_filesystem_read_ahead_answers_every_read_without_a_command(tmp_path):
    root = _rootfs(tmp_path)
    connection = ShellConnection()
    host = SshHost(connection)
    host.prefetch([str(root), f"{root}/etc"])
    host.prefetch_trees([f"{root}/{relative}" for relative in GUEST_PATHS])
    before = len(connection.commands)
    remote, local = GuestFiles(root, host=host), GuestFiles(root, host=THIS_HOST)
    for name in ("present", "machine_id", "hostname", "network", "ssh_host_keys", "host_key_regeneration",
                 "dhcp_leases", "dhcp_client_identity", "pam_loginuid_required", "systemd_version", "no_dbus_pin"):
        assert getattr(remote, name) == getattr(local, name), name
    assert remote.network[1] is not None and remote.ssh_host_keys and remote.host_key_regeneration
    assert connection.commands[before:] == []
    assert f"{root}/etc/ssh/ssh_host_ed25519_key" not in host._files  # a private key is never read


def test_a_whiteout_in_an_overlay_upper_hides_the_lower_file_on_both(tmp_path):
    lower = _rootfs(tmp_path)
    upper = tmp_path / "delta"
    (upper / "etc/ssh").mkdir(parents=True)
    # An overlay whiteout is a character device 0/0; a FIFO is what a user may make: both are "other".
    subprocess.run(["mkfifo", str(upper / "etc/ssh/ssh_host_ed25519_key.pub")], check=True)
    host = SshHost(ShellConnection())
    host.prefetch_trees([f"{layer}/{relative}" for layer in (upper, lower) for relative in GUEST_PATHS])
    assert GuestFiles(upper, lower, host=host).ssh_host_keys == {} == GuestFiles(upper, lower).ssh_host_keys
    assert GuestFiles(upper, lower, host=host).hostname == "pc7"
