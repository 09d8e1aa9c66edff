"""An sshd of the test's own on 127.0.0.1, serving this machine: a host with LXC
and containers that the suite reaches over ssh, as it reaches another host.

The sshd is Debian's own binary from the lab's gold image (the machine has no
openssh-server, and installing one would start a daemon on every address): its
only library the machine lacks (libwrap) is taken from the gold too. It listens on
loopback alone, with its own host key, config, authorized key and pid file, no
PAM; /run/sshd and the user sshd (its privilege separation) are made and
removed where the machine has none."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def loopback_sshd(gold_rootfs: Path, folder: Path):
    """Yield (spec, ssh config) of an sshd on 127.0.0.1 logging root in with a key of FOLDER."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    for name in ("host_key", "id_ed25519"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True, timeout=30)
    (folder / "authorized_keys").write_text((folder / "id_ed25519.pub").read_text())
    port = _free_port()
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {(folder / 'host_key.pub').read_text()}")
    (folder / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\nPidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n")
    config = folder / "ssh_config"
    config.write_text(f"Host 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {folder / 'id_ed25519'}\n"
                      f"  IdentitiesOnly yes\n  UserKnownHostsFile {folder / 'known_hosts'}\n"
                      "  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n")
    libraries = folder / "lib"
    libraries.mkdir(exist_ok=True)
    (libraries / "libwrap.so.0").symlink_to(gold_rootfs / "usr/lib/x86_64-linux-gnu/libwrap.so.0")
    privsep = Path("/run/sshd")
    made_privsep = not privsep.exists()
    # Its privilege-separation user: made (and removed) where the machine has none.
    made_user = subprocess.run(["getent", "passwd", "sshd"], capture_output=True).returncode != 0
    with contextlib.ExitStack() as cleanup:
        if made_privsep:
            cleanup.callback(lambda: privsep.rmdir() if privsep.exists() else None)
            privsep.mkdir(mode=0o755)
        if made_user:
            cleanup.callback(subprocess.run, ["userdel", "sshd"], capture_output=True, timeout=60)
            subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/run/sshd", "--shell",
                            "/usr/sbin/nologin", "--user-group", "sshd"], check=True, capture_output=True, timeout=60)
        yield from _serve(gold_rootfs, folder, port, libraries, config)


def _serve(gold_rootfs: Path, folder: Path, port: int, libraries: Path, config: Path):
    daemon = subprocess.Popen([str(gold_rootfs / "usr/sbin/sshd"), "-D", "-e", "-f", str(folder / "sshd_config")],
                              env={**os.environ, "LD_LIBRARY_PATH": str(libraries)},
                              stdout=subprocess.DEVNULL, stderr=open(folder / "sshd.log", "w"))
    try:
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the loopback sshd did not start: {(folder / 'sshd.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield f"ssh://root@127.0.0.1:{port}", config
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(timeout=10)
