"""The one Host: this machine read directly and the same machine read the way
another host is (the ssh Host over testinfra's local backend: its batched shell
commands, its parsing) answer every call alike."""

from __future__ import annotations

import os

import pytest
import testinfra

from lxc_compliance.readers.machine import ABSENT, DIRECTORY, FILE, OTHER, THIS_HOST, Unreadable
from lxc_compliance.readers.machine_ssh import SshHost

# The unit tier (./lxcc test --unit): no root, no container, no network.
pytestmark = pytest.mark.unit


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "etc/lxc").mkdir(parents=True)
    (tmp_path / "etc/lxc/default.conf").write_text("lxc.net.0.type = veth\n")
    (tmp_path / "etc/lxc/lxc-usernet").write_bytes(b"inst veth br0 10\n\xff\n")
    (tmp_path / "etc/lxc/.hidden").write_text("")
    (tmp_path / "a file with spaces").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "etc/lxc/default.conf")
    os.mkfifo(tmp_path / "fifo")
    return tmp_path


def _both():
    return [THIS_HOST, SshHost(testinfra.get_host("local://"), "here")]


def test_files_read_alike(tree):
    paths = [str(tree / p) for p in ("etc/lxc/default.conf", "etc/lxc/lxc-usernet", "etc/lxc", "fifo", "nothing",
                                     "a file with spaces", "link", "etc/lxc/default.conf/under-a-file")]
    answers = []
    for host in _both():
        host.prefetch(paths)
        answers.append([(host.kind(p), host.read(p), host.listdir(p), host.info(p)) for p in paths]
                       + [host.glob(f"{tree}/etc/*/*"), host.glob(f"{tree}/etc/lxc/lxc-*")])
    assert answers[0] == answers[1]
    kinds = [kind for kind, *_ in answers[0][:8]]
    assert kinds == [FILE, FILE, DIRECTORY, OTHER, ABSENT, FILE, FILE, ABSENT]
    assert answers[0][1][1] == b"inst veth br0 10\n\xff\n", "bytes as they are"
    assert answers[0][8] == [f"{tree}/etc/lxc/default.conf", f"{tree}/etc/lxc/lxc-usernet"], "dot files left out"


def test_commands_users_and_kernel_facts_alike():
    here, there = _both()
    assert here.run("printf '%%s|' %s %s", "a b", "c'd") == there.run("printf '%%s|' %s %s", "a b", "c'd")
    assert here.run("printf '%%s|' %s %s", "a b", "c'd").stdout == "a b|c'd|"
    assert here.run("exit 3").rc == there.run("exit 3").rc == 3
    assert here.user("root") == there.user("root") and here.user("root").uid == 0 and "root" in here.user("root").groups
    assert here.user("lxcc-no-such-user") == there.user("lxcc-no-such-user") and not here.user("lxcc-no-such-user").exists
    assert here.release() == there.release() and here.which("sh") == there.which("sh")
    assert here.sysctl("kernel.pid_max") == there.sysctl("kernel.pid_max") > 0
    assert here.json("echo '{\"a\": [1]}'") == there.json("echo '{\"a\": [1]}'") == {"a": [1]}
    assert here.json("echo not json", default=[]) == there.json("exit 1", default=[]) == []
    assert here.link("lo") == there.link("lo") and here.link("lo").up
    assert not here.link("lxcc-nolink0").exists and not there.link("lxcc-nolink0").exists
    mine = [p.argv for p in here.processes("pytest")] or [p.argv for p in here.processes("python")]
    assert mine, "this test's own process is listed"


def test_a_process_started_here_is_seen_alike():
    import subprocess
    import sys

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "lxcc-marker"])
    try:
        import psutil

        name = psutil.Process(sleeper.pid).name()
        seen = [[p for p in host.processes(name) if p.pid == sleeper.pid] for host in _both()]
        assert seen[0] == seen[1] and seen[0][0].argv[-1] == "lxcc-marker"
    finally:
        sleeper.kill()
        sleeper.wait(timeout=10)


class AsNobody:
    """A connection whose commands run as nobody (runuser), as testinfra's would."""

    def run(self, command: str, *args: str):
        import shlex
        import subprocess

        from types import SimpleNamespace

        line = command % tuple(shlex.quote(a) for a in args) if args else command
        done = subprocess.run(["runuser", "-u", "nobody", "--", "sh", "-c", line], capture_output=True, timeout=30, cwd="/")
        return SimpleNamespace(rc=done.returncode, stdout_bytes=done.stdout, stderr_bytes=done.stderr)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a user to become")
def test_what_a_user_may_not_read_is_unreadable_not_absent():
    """As nobody, a file behind a closed directory, or one it may not read, is Unreadable; a missing one is None."""
    import shutil
    import tempfile
    from pathlib import Path

    tree = Path(tempfile.mkdtemp(prefix="lxcc-machine-", dir="/tmp"))
    try:
        _as_nobody(tree)
    finally:
        shutil.rmtree(tree)


def _as_nobody(tree):
    os.chmod(tree, 0o755)
    (tree / "etc/lxc").mkdir(parents=True)
    (tree / "etc/lxc/default.conf").write_text("lxc.net.0.type = veth\n")
    (tree / "closed").mkdir(mode=0o700)
    (tree / "closed/secret").write_text("s")
    (tree / "private").write_text("p")
    os.chmod(tree / "private", 0o600)
    host = SshHost(AsNobody(), "nobody")
    for path in (tree / "closed/secret", tree / "closed/nothing", tree / "private"):
        with pytest.raises(Unreadable):
            host.text(str(path))
    assert host.text(str(tree / "nothing")) is None and host.text(str(tree / "etc/lxc/default.conf"))


class Counted:
    """testinfra's local backend, each command counted; or refusing every command (REFUSE)."""

    def __init__(self, refuse: bool = False) -> None:
        self.backend, self.refuse, self.commands = testinfra.get_host("local://"), refuse, []

    def run(self, command, *args):
        assert not self.refuse, f"asked {command!r} of a host that should answer from what it was handed"
        self.commands.append(command)
        return self.backend.run(command, *args)


def test_one_batch_reads_paths_programs_and_commands_as_each_would_be_read_alone(tree):
    paths = [str(tree / p) for p in ("etc/lxc/default.conf", "etc/lxc", "fifo", "nothing", "etc/nothing/under",
                                     "a file with spaces", "link")]
    commands = ["printf 'out\\n\\n'; echo err >&2; exit 3", "printf 'no newline'", "echo \"it's $((1 + 1))\""]
    connection = Counted()
    batched = SshHost(connection, "batched")
    batched.prefetch_batch(paths, ["sh", "lxcc-no-such-program"], commands)
    assert len(connection.commands) == 1
    handed = SshHost(Counted(refuse=True), "handed")  # what an xdist worker gets: no command of its own
    handed.seed(batched.snapshot())
    for host in (batched, handed):
        assert [(host.kind(p), host.read(p), host.listdir(p), host.readlink(p)) for p in paths] == \
               [(THIS_HOST.kind(p), THIS_HOST.read(p), THIS_HOST.listdir(p), THIS_HOST.readlink(p)) for p in paths]
        assert [host.which(p) for p in ("sh", "lxcc-no-such-program")] == [THIS_HOST.which("sh"), None]
        assert [host.run(c) for c in commands] == [THIS_HOST.run(c) for c in commands]
    assert batched.run(commands[0]).stdout == "out\n\n" and batched.run(commands[0]).rc == 3
    assert len(connection.commands) == 1, "everything was answered from the one batch"


def _kernel_text_files() -> list[str]:
    """Sysctl and cgroup files of this machine: one line, several lines, empty, not there."""
    found = ["/proc/sys/kernel/ostype", "/proc/sys/kernel/hostname", "/proc/sys/kernel/core_modes",
             "/proc/sys/fs/pipe-keep", "/proc/sys/kernel/lxcc-no-such-sysctl"]
    for mount in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/memory"):
        found += [f"{mount}/{name}" for name in ("cgroup.controllers", "cgroup.subtree_control", "cgroup.clone_children")]
    return found


def test_kernel_text_is_read_by_the_shell_alike():
    """The batch reads one-line sysctl and cgroup files without a fork each: the same bytes as a plain read."""
    paths = _kernel_text_files()
    connection = Counted()
    batched = SshHost(connection, "batched")
    batched.prefetch(paths)
    assert [batched.read(p) for p in paths] == [THIS_HOST.read(p) for p in paths]
    assert [batched.kind(p) for p in paths] == [THIS_HOST.kind(p) for p in paths]
    assert len(connection.commands) == 1
    assert any(THIS_HOST.read(p) and THIS_HOST.read(p).count(b"\n") == 1 for p in paths)


def test_programs_are_found_stated_and_their_capabilities_read_in_one_command(tmp_path):
    """Where each program is, its mode and owner, its file capabilities (one given here with setcap, as root)."""
    import shutil
    import subprocess

    programs = ["sh", "newuidmap", "lxcc-no-such-program"]
    if os.geteuid() == 0 and shutil.which("setcap"):
        (tmp_path / "bin").mkdir()
        capable = tmp_path / "bin/lxcc-capable"
        shutil.copy2("/bin/true", capable)
        subprocess.run(["setcap", "cap_setuid+ep", str(capable)], check=True, timeout=10)
        os.environ["PATH"] = f"{os.environ['PATH']}:{tmp_path / 'bin'}"
        programs.append("lxcc-capable")
    try:
        connection = Counted()
        batched = SshHost(connection, "batched")
        batched.prefetch_programs(programs)
        paths = [THIS_HOST.which(p) for p in programs]
        assert [batched.which(p) for p in programs] == paths
        assert [batched.info(p) for p in paths if p] == [THIS_HOST.info(p) for p in paths if p]
        found = [batched.xattr(p, "security.capability") for p in paths if p]
        assert len(connection.commands) == 1
        if shutil.which("getfattr") is None:  # package attr: without it a host over ssh tells no capabilities
            assert found == [None] * len(found)
            return
        assert found == [THIS_HOST.xattr(p, "security.capability") for p in paths if p]
        if "lxcc-capable" in programs:
            assert found[-1] and found[-1][3] == 2  # VFS_CAP_REVISION_2 (the magic's high byte, little-endian)
    finally:
        os.environ["PATH"] = os.environ["PATH"].removesuffix(f":{tmp_path / 'bin'}")
