"""Login sessions of the user who owns unprivileged containers, and why the suite keeps one open.

pam_cgfs gives a login session (``su - USER``) the cgroups an unprivileged container
needs, and whenever any session of USER opens or closes it removes every empty cgroup
under user/USER (``cg_prune_empty_cgroups`` in lxc's src/lxc/pam/pam_cgfs.c, on open
and on close). Empty is also what a cgroup is for a moment after it is made: the one
lxc-start makes for a container before filling it, and the ones a container's own
systemd makes for each service and each login while it boots and while students log in.
One session per command (a clone, a start) therefore broke the containers booting beside
it: ``networking.service: ... status=219/CGROUP``, no address, in 1 lab-unprivileged run
in 10 (the soak benchmark), and sshd dropping a login mid-authentication in another.

So a run drives USER's containers through one login session it opens once
(``OwnerSession``): a shell of USER's that runs each command and stays until the run
ends, so no session of the suite's opens or closes while containers boot. Opening and
closing it, and the few commands of other processes, are still ordered against each
other by ``login_session``'s locks.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import pwd
import select
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

LOGIN_LOCKS = Path("/run/lxc-compliance")
_MARK = "@@lxcc-session "


def login_lock(user: str, part: str = "lock") -> Path:
    """The files that order the suite's login sessions of USER (PART: lock or gate)."""
    return LOGIN_LOCKS / f"login-{user}.{part}"


class SessionWaited(RuntimeError):
    """Other login sessions of the user kept this one waiting too long."""


def flock_within(file, mode: int, deadline: float, interval: float = 0.05) -> bool:
    """FILE locked in MODE (fcntl.LOCK_EX or LOCK_SH) before DEADLINE (time.monotonic()); False past it."""
    while True:
        try:
            fcntl.flock(file, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(interval)


def _flock(file, mode: int, deadline: float, user: str, timeout: float) -> None:
    if not flock_within(file, mode, deadline):
        raise SessionWaited(f"other login sessions of {user} kept this one waiting for {timeout:.0f} s")


@contextlib.contextmanager
def login_session(user: str, needs_cgroups: bool, timeout: float):
    """Room for one `su - USER` session to open, run and close. One that must find its
    cgroups whole (lxc-start, opening or closing the run's own session, reading a session's
    cgroups) runs while no other session of the suite's for USER is open; the others may
    overlap each other. Everyone passes a gate first, so a stream of overlapping sessions
    cannot starve one that must run alone. Waits at most TIMEOUT seconds."""
    LOGIN_LOCKS.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with open(login_lock(user, "gate"), "a") as gate, open(login_lock(user), "a") as lock:
        _flock(gate, fcntl.LOCK_EX, deadline, user, timeout)
        try:
            _flock(lock, fcntl.LOCK_EX if needs_cgroups else fcntl.LOCK_SH, deadline, user, timeout)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
        yield


class OwnerSession:
    """One login session of USER, open while this process drives USER's containers: a
    shell of USER's (``su - USER -c 'exec sh'``) that runs one command at a time, each
    bounded, its output kept in files of a folder only USER and root can read.

    Sessions are shared per user in a process (``of``) and closed when it exits; a
    session whose shell went (its user removed, a command that killed it) is opened
    again on the next command."""

    _sessions: dict[str, "OwnerSession"] = {}
    _registry = threading.Lock()

    def __init__(self, user: str, open_timeout: float = 60) -> None:
        self.user = user
        self._lock = threading.Lock()
        self._count = 0
        account = pwd.getpwnam(user)
        LOGIN_LOCKS.mkdir(parents=True, exist_ok=True)
        # Named by this process's pid: the sweeper removes the folder of a process that died.
        self.folder = Path(tempfile.mkdtemp(dir=LOGIN_LOCKS, prefix=f"session-{os.getpid()}-{user}-"))
        os.chown(self.folder, account.pw_uid, account.pw_gid)
        self.folder.chmod(0o700)
        with login_session(user, needs_cgroups=True, timeout=open_timeout):
            # A shell of its own process group: a command's timeout kills that command alone.
            self.shell = subprocess.Popen(["su", "-", user, "-c", "exec sh"], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
            self._said = b""  # what the shell printed and no exchange has read yet
            # Ready once the login ran its PAM session (pam_cgfs made and entered its cgroups).
            self._exchange("true", open_timeout)

    @classmethod
    def of(cls, user: str) -> "OwnerSession":
        """USER's session in this process, opened on first use."""
        with cls._registry:
            session = cls._sessions.get(user)
            if session is None or not session.alive:
                if session is not None:
                    session.close()
                session = cls._sessions[user] = cls(user)
            return session

    @classmethod
    def close_all(cls) -> None:
        with cls._registry:
            for session in cls._sessions.values():
                session.close()
            cls._sessions.clear()

    @classmethod
    def close_user(cls, user: str) -> None:
        """Close USER's session here, if one is open (before the account goes)."""
        with cls._registry:
            session = cls._sessions.pop(user, None)
        if session is not None:
            session.close()

    @property
    def alive(self) -> bool:
        return self.shell.poll() is None

    def run(self, args: list[str], timeout: float) -> subprocess.CompletedProcess:
        """ARGS run by USER inside the session, within TIMEOUT seconds (else its command is
        killed and subprocess.TimeoutExpired raised, as for any other command of the suite)."""
        with self._lock:
            self._count += 1
            out, err = self.folder / f"{self._count}.out", self.folder / f"{self._count}.err"
            line = f"{shlex.join(args)} </dev/null >{shlex.quote(str(out))} 2>{shlex.quote(str(err))}"
            try:
                code = self._exchange(line, timeout)
            finally:
                stdout, stderr = (_take(path) for path in (out, err))
            if code is None:
                raise subprocess.TimeoutExpired(args, timeout, stdout, stderr)
            return subprocess.CompletedProcess(list(args), code, stdout, stderr)

    def _exchange(self, line: str, timeout: float) -> int | None:
        """LINE run in the background of the shell and waited for: its exit status, None past TIMEOUT."""
        if not self.alive:
            raise OSError(f"the login session of {self.user} has ended")
        self.shell.stdin.write(f'{line} & echo "{_MARK}pid $!"; wait $!; echo "{_MARK}rc $?"\n'.encode())
        self.shell.stdin.flush()
        deadline, pid = time.monotonic() + timeout, None
        try:
            while True:
                said = self._line(deadline)
                if said is None:
                    break
                if said.startswith(_MARK + "pid "):
                    pid = int(said.split()[-1])
                elif said.startswith(_MARK + "rc "):
                    return int(said.split()[-1])
        except BaseException:  # Ctrl-C, SIGTERM: the command goes with the run
            if pid is not None:
                _kill_tree(pid)
            raise
        if pid is not None:
            _kill_tree(pid)
            self._line(time.monotonic() + 10)  # its rc line, so the next exchange starts clean
        return None

    def _line(self, deadline: float) -> str | None:
        """The shell's next line, or None past DEADLINE (read unbuffered: select sees all of it)."""
        while b"\n" not in self._said:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.shell.stdout], [], [], left)
            if ready:
                chunk = os.read(self.shell.stdout.fileno(), 4096)
                if not chunk:
                    raise OSError(f"the login session of {self.user} ended mid-command")
                self._said += chunk
        line, _, self._said = self._said.partition(b"\n")
        return line.decode(errors="replace").strip()

    def close(self) -> None:
        """End the session (its close prunes USER's empty cgroups: ordered like a start)."""
        if self.alive:
            with contextlib.suppress(SessionWaited, OSError), login_session(self.user, needs_cgroups=True, timeout=60):
                with contextlib.suppress(OSError):
                    self.shell.stdin.close()
                try:
                    self.shell.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    _kill_tree(self.shell.pid)
        shutil.rmtree(self.folder, ignore_errors=True)


def _take(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
    finally:
        path.unlink(missing_ok=True)


def _kill_tree(pid: int) -> None:
    import psutil

    with contextlib.suppress(psutil.Error):
        parent = psutil.Process(pid)
        for process in [*parent.children(recursive=True), parent]:
            with contextlib.suppress(psutil.Error):
                process.kill()


atexit.register(OwnerSession.close_all)
