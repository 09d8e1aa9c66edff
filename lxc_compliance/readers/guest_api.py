"""The guest API socket an LXD or Incus instance really offers (/dev/lxd/sock,
/dev/incus/sock), read from inside the running instance by guest_api_probe.py,
as the denial probes read what a container is denied."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lxc_compliance.readers.lxc import last_words, lxc_command

PROBE = Path(__file__).with_name("guest_api_probe.py")
SYSTEM_PYTHON = "/usr/bin/python3"


@dataclass(frozen=True)
class GuestSocket:
    """The socket at PATH as a process inside the instance finds it."""

    path: str
    present: bool = False
    mode: str = ""
    # Whether GET /1.0 on it answered 200 (any process inside may ask).
    answers: bool = False
    status: str = ""
    api_version: str = ""
    # Why the probe could not tell (None: it could).
    error: str | None = None

    @classmethod
    def probe(cls, lxcpath: Path, name: str, path: str, timeout: float = 20) -> "GuestSocket":
        """PATH inside NAME (a running liblxc container in LXCPATH, as LXD and Incus keep their instances).

        >>> GuestSocket.probe(Path("/nonexistent"), "x", "/dev/lxd/sock").error is not None
        True
        """
        if not os.access(SYSTEM_PYTHON, os.X_OK) or not Path(lxcpath).is_dir():
            return cls(path, error=f"cannot enter {name}: {lxcpath} or {SYSTEM_PYTHON} (python3-lxc) is missing")
        try:  # -I: the probe's own folder must not shadow python3-lxc's 'lxc'
            done = lxc_command(SYSTEM_PYTHON, "-I", str(PROBE), str(lxcpath), name, path, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return cls(path, error=f"the probe did not answer within {timeout:g} s")
        try:
            raw = json.loads(done.stdout)
        except ValueError:
            return cls(path, error=f"the probe printed no answer: {last_words(done.stderr or done.stdout) or done.returncode}")
        if "present" not in raw:
            return cls(path, error=raw.get("error") or "the probe gave no answer")
        return cls(path, bool(raw["present"]), raw.get("mode", ""), bool(raw.get("answers")), raw.get("status", ""),
                   raw.get("api_version", ""))

    @property
    def offered(self) -> bool:
        """A process inside can reach the server through it."""
        return self.present and self.answers

    def __str__(self) -> str:
        """What was found, in words.

        >>> str(GuestSocket("/dev/lxd/sock", True, "0666", True, "HTTP/1.0 200 OK", "1.0"))
        '/dev/lxd/sock present, mode 0666, answers GET /1.0 (API 1.0)'
        >>> str(GuestSocket("/dev/incus/sock"))
        'no /dev/incus/sock'
        """
        if self.error:
            return f"{self.path}: not read ({self.error})"
        if not self.present:
            return f"no {self.path}"
        answer = f"answers GET /1.0 (API {self.api_version or '?'})" if self.answers else \
            f"does not answer ({self.status or 'no reply'})"
        return f"{self.path} present, mode {self.mode}, {answer}"
