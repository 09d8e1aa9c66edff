"""Changes to the real host for tests, each undone afterwards in reverse order.

Every change registers its undo *before* it is made, so a test that fails or
is interrupted half-way still restores what it touched.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from lxc_compliance.readers.owner_session import flock_within

# One change set at a time on this host, whichever process or xdist worker
# holds it: two overlapping sets would each "restore" the other's change, and a
# test that compares the whole host before and after must see only its own.
# Tests that only make what is theirs (a run's own bridge, user and containers,
# named by its run id) hold it shared, beside each other; one that changes what
# is the host's (a sysctl, /etc, a sweep of every run's leftovers) or compares
# the whole host holds it alone.
LOCK = Path("/run/lxc-compliance-tests.lock")
# A waiter holds the gate while it waits, so the holder's next test queues behind it instead of
# taking the lock straight back: flock is not fair, and one worker's series of host-state tests
# kept the other worker's test waiting 900 s (a CI run's error). Shared takers pass the gate
# too, so a test waiting to hold the host alone is not starved by a stream of shared ones.
GATE = Path("/run/lxc-compliance-tests.gate")
LOCK_WAIT_S = 1800


def _take(lock, deadline: float, mode: int = fcntl.LOCK_EX) -> None:
    if not flock_within(lock, mode, deadline, interval=0.2):
        raise TimeoutError(f"{LOCK} held by another test run for {LOCK_WAIT_S} s")


def _through_the_gate(lock, mode: int) -> None:
    deadline = time.monotonic() + LOCK_WAIT_S
    with GATE.open("w") as gate:
        _take(gate, deadline)
        _take(lock, deadline, mode)


class _Held:
    """This process's hold of LOCK. flock's locks belong to open files, so a second
    open in the same process would wait on its own first one: nested HostStates (a
    module's fleet around its tests) share the one open file instead."""

    file = None
    mode: int | None = None
    depth = 0


class HostState:
    """The host for one test: alone (the default; its changes are undone in reverse order)
    or SHARED with other tests that, like it, change nothing of the host's own. Nested in
    this process, an inner one holding the host alone upgrades the outer shared hold for
    its time."""

    def __init__(self, shared: bool = False) -> None:
        self._undo: list = []
        self._upgraded = False
        self.shared = shared

    @classmethod
    def for_test(cls, node) -> "HostState":
        """The hold a test (a pytest node) asks for: alone where it is marked changes_host."""
        return cls(shared=node.get_closest_marker("changes_host") is None)

    def __enter__(self) -> "HostState":
        mode = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        if _Held.depth == 0:
            lock = LOCK.open("w")
            try:
                _through_the_gate(lock, mode)
            except BaseException:
                lock.close()
                raise
            _Held.file, _Held.mode = lock, mode
        elif _Held.mode == fcntl.LOCK_SH and mode == fcntl.LOCK_EX:
            # Given up first, then taken alone: two processes upgrading at once must not wait on each other.
            fcntl.flock(_Held.file, fcntl.LOCK_UN)
            try:
                _through_the_gate(_Held.file, mode)
            except BaseException:
                _through_the_gate(_Held.file, fcntl.LOCK_SH)
                raise
            _Held.mode, self._upgraded = mode, True
        _Held.depth += 1
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.restore()
        finally:
            _Held.depth -= 1
            if _Held.depth == 0:
                _Held.file.close()
                _Held.file, _Held.mode = None, None
            elif self._upgraded:
                fcntl.flock(_Held.file, fcntl.LOCK_SH)  # waits only for a hold alone that got in between
                _Held.mode = fcntl.LOCK_SH

    def _changing(self) -> None:
        if self.shared:
            raise RuntimeError("a test holding the host shared changes nothing of it: mark it changes_host")

    def restore(self) -> None:
        while self._undo:
            undo = self._undo.pop()
            try:
                undo()
            except Exception as exc:  # keep restoring the rest
                print(f"hoststate: restore failed: {exc}")

    # --- sysctls -----------------------------------------------------------------
    def sysctl(self, key: str, value: int | str) -> None:
        self._changing()
        path = Path("/proc/sys") / key.replace(".", "/")
        original = path.read_text()
        self._undo.append(lambda: path.write_text(original))
        path.write_text(f"{value}\n")

    # --- files -------------------------------------------------------------------
    def _remember(self, path: Path) -> None:
        if path.exists() or path.is_symlink():
            data, mode = path.read_bytes(), path.stat().st_mode
            self._undo.append(lambda: (path.write_bytes(data), path.chmod(mode & 0o7777)))
        else:
            self._undo.append(lambda: path.unlink(missing_ok=True))

    def _remember_directories(self, directory: Path) -> None:
        missing = []
        while not directory.exists():
            missing.append(directory)
            directory = directory.parent
        for created in missing:  # removed deepest first, after their contents
            self._undo.append(lambda d=created: shutil.rmtree(d, ignore_errors=True))

    def write(self, path: str | Path, text: str, mode: int | None = None) -> None:
        self._changing()
        path = Path(path)
        self._remember_directories(path.parent)
        self._remember(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if mode is not None:
            path.chmod(mode)

    def append(self, path: str | Path, line: str) -> None:
        self._changing()
        path = Path(path)
        self._remember(path)
        with path.open("a") as handle:
            handle.write(line.rstrip("\n") + "\n")

    def edit(self, path: str | Path, old: str, new: str) -> None:
        self._changing()
        path = Path(path)
        self._remember(path)
        path.write_text(path.read_text().replace(old, new))

    def remove(self, path: str | Path) -> None:
        self._changing()
        path = Path(path)
        self._remember(path)
        path.unlink(missing_ok=True)

    def chmod(self, path: str | Path, mode: int) -> None:
        self._changing()
        path = Path(path)
        original = path.stat().st_mode & 0o7777
        self._undo.append(lambda: path.chmod(original))
        path.chmod(mode)

    # --- users ---------------------------------------------------------------------
    def user(self, prefix: str = "lxcct") -> str:
        """A throwaway user with a home directory, removed afterwards."""
        self._changing()
        name = f"{prefix}{uuid.uuid4().hex[:6]}"
        self._undo.append(lambda: subprocess.run(["userdel", "-r", "-f", name], capture_output=True))
        for path in ("/etc/subuid", "/etc/subgid"):
            self._remember(Path(path))  # useradd may add ranges of its own
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True, capture_output=True)
        return name


def home(user: str) -> Path:
    return Path(os.path.expanduser(f"~{user}"))
