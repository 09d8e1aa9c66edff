"""A Host (readers.machine) over recorded files and command outputs: the readers
and checks run on it as on a real host, for the states this machine cannot be
put in (a systemd host, a kernel setting the sandbox cannot write)."""

from __future__ import annotations

from lxc_compliance.readers.machine import ABSENT, DIRECTORY, FILE, Account, FileInfo, Host, Link, Result


class RecordedHost(Host):
    """FILES (path -> text) and COMMANDS (command line -> stdout; a missing one fails)."""

    local = False
    label = "recorded"

    def __init__(self, files: dict[str, str], commands: dict[str, str] | None = None, release: str = "6.1.0-40-amd64",
                 modes: dict[str, int] | None = None) -> None:
        self.files, self.commands, self._release, self.modes = dict(files), dict(commands or {}), release, modes or {}

    def _children(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        return sorted({p[len(prefix):].split("/")[0] for p in self.files if p.startswith(prefix)})

    def kind(self, path: str) -> str:
        if path in self.files:
            return FILE
        return DIRECTORY if self._children(path) else ABSENT

    def read(self, path: str) -> bytes | None:
        return self.files[path].encode() if path in self.files else None

    def listdir(self, path: str) -> list[str] | None:
        return self._children(path) if self.kind(path) == DIRECTORY else None

    def readlink(self, path: str) -> str | None:
        return None

    def info(self, path: str) -> FileInfo | None:
        kind = self.kind(path)
        if kind == ABSENT:
            return None
        return FileInfo(self.modes.get(path, 0o100644 if kind == FILE else 0o40755), 0)

    def xattr(self, path: str, name: str) -> bytes | None:
        return None

    def which(self, program: str) -> str | None:
        return next((p for p in (f"/usr/bin/{program}", f"/usr/sbin/{program}") if p in self.files), None)

    def release(self) -> str:
        return self._release

    def run(self, command: str, *args: str, timeout: float | None = None) -> Result:
        line = command % tuple(args) if args else command
        found = self.commands.get(line)
        return Result(0 if found is not None else 1, found or "", "")

    def user(self, name: str) -> Account:
        for line in self.files.get("/etc/passwd", "").splitlines():
            account = Account.from_passwd(line)
            if account and account.name == name:
                return account
        return Account(name)

    def link(self, name: str) -> Link:
        return Link(name)

    def udp_sockets(self, port: int) -> list:
        return []

    def processes(self, name: str) -> list:
        return []
