"""The one way a reader reaches the host it reads: a ``Host``. Every reader takes
one, as testinfra's modules take ``host``: this machine (``LocalHost``, read
directly) or another over ssh (``SshHost``, batched and kept), the same calls on
both, so each reader is written once and audits any host.

A Host answers for files (``kind``, ``read``, ``text``, ``listdir``, ``info``,
``glob``), programs (``which``, ``run``, ``json``), accounts (``user``) and what
the kernel keeps that no file shows the same way on every host (``link``,
``udp_sockets``, ``processes``). Nothing here writes to the host.
"""

from __future__ import annotations

import fnmatch
import grp
import json
import os
import posixpath
import pwd
import shlex
import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lxc_compliance.readers.network_records import Link, UdpSocket


# Where lxc-checkconfig and `command -v` also find administrators' tools.
SBIN = ("/usr/sbin", "/sbin")

# What ``kind`` says of a path.
FILE, UNREADABLE_FILE, DIRECTORY, OTHER, HIDDEN, ABSENT = "F", "U", "D", "E", "X", "N"
# HIDDEN: a directory on the way cannot be entered, so whether it exists cannot be told.


class Unreadable(Exception):
    """A file the check needs exists, or may exist, where this user cannot read it."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


@dataclass(frozen=True)
class FileInfo:
    """What the readers ask of an inode."""

    mode: int
    uid: int

    @property
    def setuid(self) -> bool:
        return bool(self.mode & stat.S_ISUID)

    @property
    def filemode(self) -> str:
        """'-rwsr-xr-x'.

        >>> FileInfo(0o104755, 0).filemode
        '-rwsr-xr-x'
        """
        return stat.filemode(self.mode)


@dataclass(frozen=True)
class Result:
    """A command's exit status and output."""

    rc: int
    stdout: str
    stderr: str = ""

    @property
    def succeeded(self) -> bool:
        return self.rc == 0


@dataclass(frozen=True)
class Account:
    """A user of the host (``exists`` False where there is none of that name)."""

    name: str
    exists: bool = False
    uid: int | None = None
    gid: int | None = None
    home: str = ""
    shell: str = ""
    groups: tuple[str, ...] = ()

    @classmethod
    def from_passwd(cls, line: str, groups: tuple[str, ...] = ()) -> "Account | None":
        """An /etc/passwd (or ``getent passwd``) line.

        >>> Account.from_passwd("inst:x:1000:1000:,,,:/home/inst:/bin/bash").home
        '/home/inst'
        """
        fields = line.strip().split(":")
        if len(fields) < 7 or not fields[2].isdigit() or not fields[3].isdigit():
            return None
        return cls(fields[0], True, int(fields[2]), int(fields[3]), fields[5], fields[6], groups)


@dataclass(frozen=True)
class Process:
    """A running process: its pid, name and command line."""

    pid: int
    name: str
    argv: tuple[str, ...] = field(default=())


def __getattr__(name: str):
    """Link and UdpSocket, what the Host's link() and udp_sockets() say, are the readers' from here;
    loaded when first asked for (a kernel run never does)."""
    if name in ("Link", "UdpSocket"):
        from lxc_compliance.readers import network_records

        return getattr(network_records, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# In a path given to Host.prefetch_batch: the host's kernel release, known there before it is here.
RELEASE = "@release@"


class Host:
    """A host the readers read. Subclasses carry the transport (``kind``, ``read``,
    ``listdir``, ``readlink``, ``info``, ``xattr``, ``which``, ``release``, ``run``, ``user``,
    ``link``, ``udp_sockets``, ``processes``); what is built on those is here, once."""

    local = True
    label = "local"

    # --- batching (a remote host reads many paths in one command; here a no-op) ---------

    def prefetch(self, paths) -> None:
        """Read PATHS ahead, where that saves commands."""

    def prefetch_programs(self, programs) -> None:
        """Find PROGRAMS and read their inodes ahead, where that saves commands."""

    def prefetch_trees(self, paths) -> None:
        """Read the file trees PATHS (absolute; shell globs) ahead, where that saves commands:
        a root filesystem's files, a config and what it includes."""

    def prefetch_runs(self, commands) -> None:
        """Run the read-only COMMANDS ahead, where that saves commands (``run`` then answers them)."""

    def prefetch_batch(self, paths=(), programs=(), commands=(), first: str | None = None,
                       in_cgroup_mounts=()) -> "Result | None":
        """prefetch, prefetch_programs and prefetch_runs at once, where that saves commands; FIRST's
        Result (None without it). Here: FIRST run alone."""
        return None if first is None else self.run(first)

    # --- files ----------------------------------------------------------------------

    def text(self, path: str) -> str | None:
        """PATH's text, or None where nothing is there; Unreadable where this user
        cannot tell (a directory on the way it may not enter, or a file it may not read).

        >>> THIS_HOST.text("/no/such/file") is None
        True
        """
        kind = self.kind(path)
        if kind in (UNREADABLE_FILE, HIDDEN):
            raise Unreadable(path)
        if kind != FILE:
            return None
        data = self.read(path)
        if data is None:
            raise Unreadable(path)
        return data.decode(errors="replace")

    def exists(self, path: str) -> bool:
        return self.kind(path) not in (ABSENT, HIDDEN)

    def is_file(self, path: str) -> bool:
        return self.kind(path) in (FILE, UNREADABLE_FILE)

    def is_dir(self, path: str) -> bool:
        return self.kind(path) == DIRECTORY

    def owner(self, path: str) -> int | None:
        """The uid that owns PATH, or None where it cannot be read."""
        info = self.info(path)
        return info.uid if info else None

    def glob(self, pattern: str, every: bool = False) -> list[str]:
        """Files matching PATTERN (wildcards in any part, dot files left out), sorted;
        EVERY: whatever the last part names (folders, links, devices) too.

        >>> THIS_HOST.glob("/proc/sys/kernel/osreleas?")
        ['/proc/sys/kernel/osrelease']
        """
        parts = [part for part in pattern.split("/") if part]
        candidates = ["/"]
        for number, part in enumerate(parts):
            last, found = number == len(parts) - 1, []
            for directory in candidates:
                if not any(c in part for c in "*?["):
                    found.append(posixpath.join(directory, part))
                    continue
                listed = [posixpath.join(directory, name) for name in self.listdir(directory) or []
                          if fnmatch.fnmatch(name, part) and not name.startswith(".")]
                # What a wildcard lists is tested for a folder (a remote host has most kinds read
                # ahead); a fixed part is not: listing what is no folder finds nothing anyway.
                found += listed if last else [path for path in listed if self.is_dir(path)]
            candidates = found
        if every:  # a link or an overlay whiteout counts: what the last part names, not where it leads
            return sorted(path for path in candidates if self.readlink(path) is not None or self.exists(path))
        return sorted(path for path in candidates if self.is_file(path))

    def sysctl(self, key: str) -> int | None:
        """KEY's value (its first number), or None where the kernel has no such setting.

        >>> THIS_HOST.sysctl("kernel.pid_max") > 0
        True
        """
        text = self.text("/proc/sys/" + key.replace(".", "/"))
        return int(text.split()[0]) if text and text.split() and text.split()[0].lstrip("-").isdigit() else None

    # --- programs -------------------------------------------------------------------

    def json(self, command: str, *args: str, default=None):
        """What COMMAND prints as JSON, or DEFAULT where it fails or prints none."""
        result = self.run(command, *args)
        try:
            return json.loads(result.stdout) if result.rc == 0 and result.stdout.strip() else default
        except ValueError:
            return default


class LocalHost(Host):
    """This machine, read directly (no subprocess where a system call does)."""

    local = True
    label = "local"

    def __init__(self) -> None:
        # Commands prefetch_runs started, by their line: each answers one run().
        self._started: dict[str, subprocess.Popen] = {}

    def kind(self, path: str) -> str:
        try:
            found = os.stat(path)
        except PermissionError:
            return HIDDEN
        except OSError:
            return ABSENT
        if stat.S_ISREG(found.st_mode):
            return FILE if os.access(path, os.R_OK) else UNREADABLE_FILE
        return DIRECTORY if stat.S_ISDIR(found.st_mode) else OTHER

    def read(self, path: str) -> bytes | None:
        """PATH's bytes, or None where it is no regular file this user may read
        (opened without blocking, so a FIFO or a device is never waited on)."""
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                return None
            with os.fdopen(descriptor, "rb", closefd=False) as handle:
                return handle.read()
        except OSError:
            return None
        finally:
            os.close(descriptor)

    def listdir(self, path: str) -> list[str] | None:
        """PATH's entries, sorted; None where it is no directory this user may list."""
        try:
            return sorted(os.listdir(path))
        except OSError:
            return None

    def readlink(self, path: str) -> str | None:
        """Where the symbolic link PATH points, or None where PATH is no link."""
        try:
            return os.readlink(path)
        except OSError:
            return None

    def info(self, path: str) -> FileInfo | None:
        try:
            found = os.stat(path)
        except OSError:
            return None
        return FileInfo(found.st_mode, found.st_uid)

    def xattr(self, path: str, name: str) -> bytes | None:
        try:
            return os.getxattr(path, name)
        except OSError:
            return None

    def which(self, program: str) -> str | None:
        return shutil.which(program, path=os.pathsep.join([os.environ.get("PATH", os.defpath), *SBIN]))

    def release(self) -> str:
        return os.uname().release

    def prefetch_runs(self, commands) -> None:
        """Start the read-only COMMANDS now, in the background: the first run() of each takes its
        answer (the checks that ask come later; the commands run meanwhile on another core)."""
        for line in commands:
            if line not in self._started:
                self._started[line] = self._start(line)

    def run(self, command: str, *args: str, timeout: float = 120) -> Result:
        """COMMAND through sh (ARGS quoted into its %s), bounded by TIMEOUT seconds (rc 124 past it)."""
        line = command % tuple(shlex.quote(str(a)) for a in args) if args else command
        process = self._started.pop(line, None) or self._start(line)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            return Result(124, "", f"timed out after {timeout:g} s: {line}")
        except BaseException:  # Ctrl-C: nothing of it outlives the run
            process.kill()
            process.wait()
            raise
        return Result(process.returncode, stdout, stderr)

    @staticmethod
    def _start(line: str) -> subprocess.Popen:
        return subprocess.Popen(line, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, errors="replace")

    def user(self, name: str) -> Account:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return Account(name)
        groups = [g.gr_name for g in grp.getgrall() if name in g.gr_mem]
        try:
            groups.insert(0, grp.getgrgid(entry.pw_gid).gr_name)
        except KeyError:
            pass
        return Account(name, True, entry.pw_uid, entry.pw_gid, entry.pw_dir, entry.pw_shell, tuple(dict.fromkeys(groups)))

    def link(self, name: str) -> Link:
        """NAME as netlink reports it (pyroute2)."""
        import socket

        from pyroute2 import IPRoute

        from lxc_compliance.readers.network_records import Link
        from pyroute2.netlink.rtnl.ifinfmsg import IFF_UP

        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=name)
            if not found:
                return Link(name)
            link = ipr.get_links(found[0])[0]
            addresses = tuple(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                              for a in ipr.get_addr(index=found[0], family=socket.AF_INET))
            ports = tuple(other.get_attr("IFLA_IFNAME") for other in ipr.get_links()
                          if other.get_attr("IFLA_MASTER") == found[0])
        info = link.get_attr("IFLA_LINKINFO")
        data = info.get_attr("IFLA_INFO_DATA") if info else None
        delay = data.get_attr("IFLA_BR_FORWARD_DELAY") if data else None
        stp = data.get_attr("IFLA_BR_STP_STATE") if data else None
        return Link(name, True, info.get_attr("IFLA_INFO_KIND") if info else None, bool(link["flags"] & IFF_UP),
                    link.get_attr("IFLA_MTU"), None if delay is None else delay / 100,
                    None if stp is None else bool(stp), ports, addresses)

    def udp_sockets(self, port: int) -> list[UdpSocket]:
        """Every IPv4 UDP socket bound to PORT in this network namespace (sock_diag),
        with the process holding it (from /proc/PID/fd: sock_diag names sockets by inode)."""
        import socket

        from pyroute2 import DiagSocket

        from lxc_compliance.readers.network_records import UdpSocket

        with DiagSocket() as diag:
            diag.bind()
            messages = [m for m in diag.get_sock_stats(family=socket.AF_INET, protocol=socket.IPPROTO_UDP)
                        if m["idiag_sport"] == port]
        owners = self._socket_owners() if messages else {}
        sockets = []
        for message in messages:
            index = message["idiag_if"]
            try:
                device = socket.if_indextoname(index) if index else None
            except OSError:
                device = f"if{index}"
            pid, process = owners.get(message["idiag_inode"], (None, "?"))
            sockets.append(UdpSocket(message["idiag_src"], device, pid, process, port))
        return sockets

    @staticmethod
    def _socket_owners() -> dict[int, tuple[int, str]]:
        import psutil

        owners = {}
        for process in psutil.process_iter(["name"]):
            try:
                for fd in os.listdir(f"/proc/{process.pid}/fd"):
                    target = os.readlink(f"/proc/{process.pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        owners[int(target[8:-1])] = (process.pid, process.info["name"])
            except OSError:
                continue
        return owners

    def processes(self, name: str) -> list[Process]:
        """Every running process called NAME, with its command line (psutil)."""
        import psutil

        found = []
        for process in psutil.process_iter(["name", "cmdline"]):
            if process.info["name"] == name and process.info["cmdline"]:
                found.append(Process(process.pid, name, tuple(process.info["cmdline"])))
        return found


THIS_HOST = LocalHost()
"""This machine."""
