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
# holds it: two overlapping sets would each "restore" the other's change.
LOCK = Path("/run/lxc-compliance-tests.lock")
# A waiter holds the gate while it waits, so the holder's next test queues behind it instead of
# taking the lock straight back: flock is not fair, and one worker's series of host-state tests
# kept the other worker's test waiting 900 s (a CI run's error).
GATE = Path("/run/lxc-compliance-tests.gate")
LOCK_WAIT_S = 1800


def _take(lock, deadline: float) -> None:
    if not flock_within(lock, fcntl.LOCK_EX, deadline, interval=0.2):
        raise TimeoutError(f"{LOCK} held by another test run for {LOCK_WAIT_S} s")


class HostState:
    def __init__(self) -> None:
        self._undo: list = []
        self._lock = None

    def __enter__(self) -> "HostState":
        self._lock = LOCK.open("w")
        deadline = time.monotonic() + LOCK_WAIT_S
        with GATE.open("w") as gate:
            _take(gate, deadline)
            try:
                _take(self._lock, deadline)
            except BaseException:
                self._lock.close()
                raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.restore()
        finally:
            self._lock.close()

    def restore(self) -> None:
        while self._undo:
            undo = self._undo.pop()
            try:
                undo()
            except Exception as exc:  # keep restoring the rest
                print(f"hoststate: restore failed: {exc}")

    # --- sysctls -----------------------------------------------------------------
    def sysctl(self, key: str, value: int | str) -> None:
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
        path = Path(path)
        self._remember_directories(path.parent)
        self._remember(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if mode is not None:
            path.chmod(mode)

    def append(self, path: str | Path, line: str) -> None:
        path = Path(path)
        self._remember(path)
        with path.open("a") as handle:
            handle.write(line.rstrip("\n") + "\n")

    def edit(self, path: str | Path, old: str, new: str) -> None:
        path = Path(path)
        self._remember(path)
        path.write_text(path.read_text().replace(old, new))

    def remove(self, path: str | Path) -> None:
        path = Path(path)
        self._remember(path)
        path.unlink(missing_ok=True)

    def chmod(self, path: str | Path, mode: int) -> None:
        path = Path(path)
        original = path.stat().st_mode & 0o7777
        self._undo.append(lambda: path.chmod(original))
        path.chmod(mode)

    # --- users ---------------------------------------------------------------------
    def user(self, prefix: str = "lxcct") -> str:
        """A throwaway user with a home directory, removed afterwards."""
        name = f"{prefix}{uuid.uuid4().hex[:6]}"
        self._undo.append(lambda: subprocess.run(["userdel", "-r", "-f", name], capture_output=True))
        for path in ("/etc/subuid", "/etc/subgid"):
            self._remember(Path(path))  # useradd may add ranges of its own
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True, capture_output=True)
        return name


def home(user: str) -> Path:
    return Path(os.path.expanduser(f"~{user}"))
