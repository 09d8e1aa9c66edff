"""Another host, reached over ssh (testinfra's ssh backend: one multiplexed
connection). What the readers ask is read in batches (``prefetch``,
``prefetch_programs``, ``prefetch_trees``: one command each) and kept; anything
else is one command over the connection. ``snapshot`` and ``seed`` hand what was
read to another process (an xdist worker). Nothing is written on that host."""

from __future__ import annotations

import base64
import fnmatch
import io
import posixpath
import re
import shlex
import tarfile

from lxc_compliance.readers.machine import (ABSENT, DIRECTORY, FILE, OTHER, Account, FileInfo, Host, Link, Process,
                                            Result, UdpSocket)

# One command reads many paths: each as "F PATH BASE64" (a readable regular file),
# "U PATH" (a file it may not read), "D PATH" (a directory), "E PATH" (something
# else that exists), "X PATH" (behind a directory it may not enter) or "N PATH";
# a link first as "L PATH<tab>TARGET", then what it leads to.
_READ_MANY = r"""for p in "$@"; do
  if [ -L "$p" ]; then printf 'L %s\t%s\n' "$p" "$(readlink -- "$p")"; fi
  if [ -f "$p" ] && [ -r "$p" ]; then printf 'F %s ' "$p"; base64 -w0 < "$p"; echo
  elif [ -f "$p" ]; then printf 'U %s\n' "$p"
  elif [ -d "$p" ]; then printf 'D %s\n' "$p"
  elif [ -e "$p" ]; then printf 'E %s\n' "$p"
  else k=N; d=$(dirname "$p"); while [ "$d" != / ]; do [ ! -d "$d" ] || [ -x "$d" ] || k=X; d=$(dirname "$d"); done
    printf '%s %s\n' "$k" "$p"; fi
done"""
# One command finds programs and reads what the kernel checks ask of them:
# "W PROGRAM PATH", "S PATH MODE(hex) UID", "X PATH HEX(security.capability)".
_PROGRAMS = r"""PATH="$PATH:/usr/sbin:/sbin"
for program in "$@"; do
  path=$(command -v "$program") || { printf 'W %s\n' "$program"; continue; }
  printf 'W %s %s\n' "$program" "$path"
  printf 'S %s %s\n' "$path" "$(stat -L -c '%f %u' -- "$path")"
  printf 'X %s %s\n' "$path" "$(getfattr --absolute-names --only-values -n security.capability -- "$path" 2>/dev/null | od -An -v -tx1 | tr -d ' \n')"
done"""
# ss has no JSON output: one line per socket, "UNCONN 0 0 10.0.3.1%br0:67 0.0.0.0:* users:(("dnsmasq",pid=9,fd=4))".
_SS_LINE = r"^\S+\s+\d+\s+\d+\s+(?P<address>[\d.*]+)(?:%(?P<device>\S+))?:{port}\s+\S+(?:\s+users:\(\(\"(?P<name>[^\"]+)\",pid=(?P<pid>\d+))?"


def parse_ss(text: str, port: int) -> list[UdpSocket]:
    """The PORT sockets in ``ss -H -u -a -n -p 'sport = :PORT'`` output.

    >>> [s.describe() for s in parse_ss('UNCONN 0 0 0.0.0.0%br0:67 0.0.0.0:* users:(("dnsmasq",pid=9,fd=4))\\n'
    ...                                 'UNCONN 0 0 *:67 *:*\\n', 67)]
    ['dnsmasq[9] on 0.0.0.0%br0:67', '?[None] on 0.0.0.0 (all interfaces):67']
    """
    pattern = re.compile(_SS_LINE.format(port=port))
    sockets = []
    for line in text.splitlines():
        match = pattern.match(line.strip())
        if match:
            address = "0.0.0.0" if match["address"] == "*" else match["address"]
            sockets.append(UdpSocket(address, match["device"], int(match["pid"]) if match["pid"] else None,
                                     match["name"] or "?", port))
    return sockets


def _glob_word(path: str) -> str:
    """PATH as one shell word, its '*' left to the shell.

    >>> _glob_word("/var/lib/lxc/my pc/rootfs/etc/ssh/ssh_host_*_key.pub")
    "'/var/lib/lxc/my pc/rootfs/etc/ssh/ssh_host_'*_key.pub"
    """
    return "*".join(shlex.quote(part) if part else "" for part in path.split("*"))


def _matches(path: str, parts: list[str]) -> bool:
    """PATH matches the glob PARTS part for part ('*' never spans a '/'), dot files left out.

    >>> _matches("/r/etc/ssh/ssh_host_rsa_key.pub", "r/etc/ssh/ssh_host_*_key.pub".split("/"))
    True
    >>> _matches("/r/etc/ssh/ssh_host_rsa_key", "r/etc/ssh/ssh_host_*_key.pub".split("/"))
    False
    """
    names = path.strip("/").split("/")
    return (len(names) == len(parts) and not names[-1].startswith(".")
            and all(fnmatch.fnmatchcase(name, part) for name, part in zip(names, parts)))


def link_from_ip(name: str, links: list, addresses: list, ports: list) -> Link:
    """A Link from ``ip -j -d link show dev NAME``, ``ip -j -4 addr show dev NAME`` and
    ``ip -j link show master NAME`` (ip prints the bridge's forward delay in centiseconds).

    >>> link_from_ip("br0", [{"flags": ["UP"], "mtu": 1500, "linkinfo": {"info_kind": "bridge",
    ...     "info_data": {"forward_delay": 0, "stp_state": 0}}}], [{"addr_info": [{"family": "inet",
    ...     "local": "10.0.3.1", "prefixlen": 24}]}], [{"ifname": "veth1"}]).describe()
    'br0: bridge, up, 10.0.3.1/24, forward delay 0.0s, STP off, MTU 1500, ports: veth1'
    """
    if not links:
        return Link(name)
    link = links[0]
    info = link.get("linkinfo") or {}
    data = info.get("info_data") or {}
    delay, stp = data.get("forward_delay"), data.get("stp_state")
    return Link(name, True, info.get("info_kind"), "UP" in link.get("flags", []), link.get("mtu"),
                None if delay is None else delay / 100, None if stp is None else bool(stp),
                tuple(port["ifname"] for port in ports if "ifname" in port),
                tuple(f"{a['local']}/{a['prefixlen']}" for entry in addresses for a in entry.get("addr_info", [])
                      if a.get("family") == "inet"))


class SshHost(Host):
    """A host reached through a testinfra Host (``connection`` from testinfra.get_host)."""

    local = False

    def __init__(self, connection, label: str = "remote") -> None:
        self.connection = connection
        self.label = label
        self._kinds: dict[str, str] = {}
        self._files: dict[str, bytes] = {}
        self._which: dict[str, str | None] = {}
        self._info: dict[str, FileInfo | None] = {}
        self._xattr: dict[str, bytes | None] = {}
        self._release: str | None = None
        # What prefetch_trees read: the trees asked for, each folder's entries, each link's target.
        self._trees: set[str] = set()
        self._children: dict[str, set[str]] = {}
        self._links: dict[str, str] = {}
        # Where each path prefetch read points, where it is a link (None: no link).
        self._readlinks: dict[str, str | None] = {}

    def run(self, command: str, *args: str, timeout: float | None = None) -> Result:
        """COMMAND there (ARGS quoted into its %s). A RuntimeError where ssh itself fails."""
        done = self.connection.run(command, *args)
        return Result(done.rc, done.stdout, done.stderr)

    # --- batches --------------------------------------------------------------------

    def prefetch(self, paths) -> None:
        """Read PATHS (those not read yet) in one command."""
        wanted = [path for path in dict.fromkeys(paths) if path not in self._kinds]
        if not wanted:
            return
        result = self.run("sh -c %s sh" + " %s" * len(wanted), _READ_MANY, *wanted)
        self._readlinks.update(dict.fromkeys(wanted))
        for line in result.stdout.splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "L":
                path, _, target = rest.partition("\t")
                if path in wanted:
                    self._readlinks[path] = target
                continue
            path, _, data = rest.rpartition(" ") if kind == FILE else (rest, "", "")
            if path in wanted:
                self._kinds[path] = kind
                if kind == FILE:
                    self._files[path] = base64.b64decode(data)

    def prefetch_programs(self, programs) -> None:
        """Find PROGRAMS and read their mode, owner and file capabilities, in one command."""
        wanted = [program for program in programs if program not in self._which]
        if not wanted:
            return
        result = self.run("sh -c %s sh" + " %s" * len(wanted), _PROGRAMS, *wanted)
        for line in result.stdout.splitlines():
            kind, *fields = line.split(" ")
            if kind == "W":
                self._which[fields[0]] = fields[1] if len(fields) > 1 and fields[1] else None
            elif kind == "S" and len(fields) == 3:
                self._info[fields[0]] = FileInfo(int(fields[1], 16), int(fields[2]))
            elif kind == "X":
                self._xattr[fields[0]] = bytes.fromhex(fields[1]) if len(fields) > 1 and fields[1] else None

    def snapshot(self) -> dict:
        """What was read, as JSON can carry it."""
        return {"kinds": self._kinds, "files": {p: base64.b64encode(d).decode() for p, d in self._files.items()},
                "which": self._which, "xattr": {p: d.hex() if d else None for p, d in self._xattr.items()},
                "info": {p: [i.mode, i.uid] if i else None for p, i in self._info.items()}, "release": self._release}

    def seed(self, snapshot: dict) -> None:
        """Take what another process read (its ``snapshot``)."""
        self._kinds.update(snapshot.get("kinds", {}))
        self._files.update({p: base64.b64decode(d) for p, d in snapshot.get("files", {}).items()})
        self._which.update(snapshot.get("which", {}))
        self._xattr.update({p: bytes.fromhex(d) if d else None for p, d in snapshot.get("xattr", {}).items()})
        self._info.update({p: FileInfo(*i) if i else None for p, i in snapshot.get("info", {}).items()})
        self._release = snapshot.get("release") or self._release

    # --- files ----------------------------------------------------------------------

    def _resolved(self, path: str) -> str:
        """PATH with the links a tree holds followed (as the host's own stat follows them)."""
        for _ in range(8):
            if path not in self._links:
                break
            path = posixpath.normpath(posixpath.join(posixpath.dirname(path), self._links[path]))
        return path

    def _known(self, path: str) -> bool:
        return path in self._kinds or self._in_tree(path)

    def kind(self, path: str) -> str:
        path = self._resolved(path)
        if not self._known(path):
            self.prefetch([path])
        return self._kinds.get(path, ABSENT)

    def read(self, path: str) -> bytes | None:
        path = self._resolved(path)
        if not self._known(path):
            self.prefetch([path])
        return self._files.get(path)

    def listdir(self, path: str) -> list[str] | None:
        path = self._resolved(path)
        if self._in_tree(path):
            return sorted(self._children.get(path, ())) if self._kinds.get(path) == DIRECTORY else None
        done = self.run("[ -d %s ] && ls -1A -- %s", path, path)
        return sorted(done.stdout.splitlines()) if done.rc == 0 else None

    def readlink(self, path: str) -> str | None:
        if path in self._links or self._in_tree(path):
            return self._links.get(path)
        if path in self._readlinks:
            return self._readlinks[path]
        done = self.run("readlink -- %s; true", path)
        return done.stdout.rstrip("\n") or None

    def glob(self, pattern: str, every: bool = False) -> list[str]:
        """As Host.glob; a pattern prefetch_trees read is answered from what it holds."""
        if pattern not in self._trees:
            return super().glob(pattern, every)
        parts = pattern.strip("/").split("/")
        found = [path for path in {*self._kinds, *self._links} if _matches(path, parts)]
        return sorted(path for path in found if every or self.is_file(path))

    def info(self, path: str) -> FileInfo | None:
        if path not in self._info:
            result = self.run("stat -L -c '%%f %%u' -- %s", path)
            fields = result.stdout.split()
            self._info[path] = FileInfo(int(fields[0], 16), int(fields[1])) if result.rc == 0 and fields else None
        return self._info[path]

    def xattr(self, path: str, name: str) -> bytes | None:
        """NAME of PATH through getfattr (package attr); None where it has none or no getfattr."""
        if name != "security.capability" or path not in self._xattr:
            result = self.run("getfattr --absolute-names --only-values -n %s -- %s | od -An -v -tx1", name, path)
            digits = "".join(result.stdout.split())
            value = bytes.fromhex(digits) if result.rc == 0 and digits else None
            if name != "security.capability":
                return value
            self._xattr[path] = value
        return self._xattr[path]

    def which(self, program: str) -> str | None:
        self.prefetch_programs([program])
        return self._which.get(program)

    def release(self) -> str:
        if self._release is None:
            self._release = self.run("uname -r").stdout.strip()
        return self._release

    # --- accounts and the kernel's tables -------------------------------------------

    def user(self, name: str) -> Account:
        done = self.run("getent passwd %s && id -Gn %s; true", name, name)
        lines = done.stdout.splitlines()
        account = Account.from_passwd(lines[0], tuple(lines[1].split()) if len(lines) > 1 else ()) if lines else None
        return account if account is not None and account.name == name else Account(name)

    def link(self, name: str) -> Link:
        """NAME as the host's ``ip -j`` prints it (`|| true`: ip exits 255 for a missing device,
        which testinfra takes for a lost ssh connection)."""
        quoted = shlex.quote(name)
        return link_from_ip(name, self.json(f"ip -j -d link show dev {quoted} 2>/dev/null || true", default=[]),
                            self.json(f"ip -j -4 addr show dev {quoted} 2>/dev/null || true", default=[]),
                            self.json(f"ip -j link show master {quoted} 2>/dev/null || true", default=[]))

    def udp_sockets(self, port: int) -> list[UdpSocket]:
        return parse_ss(self.run(f"ss -H -u -a -n -p 'sport = :{int(port)}' 2>/dev/null || true").stdout, port)

    def processes(self, name: str) -> list[Process]:
        pids = [path.split("/")[2] for path in self.run("grep -lx %s /proc/[0-9]*/comm 2>/dev/null; true", name).stdout.split()]
        paths = [f"/proc/{pid}/cmdline" for pid in pids]
        self.prefetch(paths)
        found = []
        for pid, path in zip(pids, paths):
            argv = tuple(a.decode(errors="replace") for a in (self._files.get(path) or b"").split(b"\0") if a)
            if argv:
                found.append(Process(int(pid), name, argv))
        return found

    # --- file trees: a root filesystem's files, a config and what it includes ---------

    def prefetch_trees(self, paths) -> None:
        """Read PATHS (absolute; shell globs; missing ones absent) and everything under them in
        one tar stream, and the targets of the systemd links under each 'ROOTFS/etc/systemd/system'
        (resolved inside ROOTFS). What a tree holds, and that nothing else is under it, is kept."""
        wanted = [path for path in dict.fromkeys(paths) if path not in self._trees]
        if not wanted:
            return
        words = " ".join(_glob_word(p.lstrip("/")) for p in wanted)
        links = " ".join(_glob_word(p.lstrip("/") + "/*.wants/*") for p in wanted if p.endswith("/etc/systemd/system"))
        script = (f"cd / && {{ for f in {words}; do [ -e \"$f\" ] || [ -L \"$f\" ] && printf '%s\\n' \"$f\"; done; "
                  + (f"for l in {links}; do t=$(readlink \"$l\") && case \"$t\" in /dev/*) ;; /*) "
                     "r=${l%%/etc/systemd/system/*}; printf '%s\\n' \"$r$t\";; esac; done; " if links else "")
                  + "} | sort -u | tar -czf - --ignore-failed-read -T - 2>/dev/null | base64 -w0; true")
        data = base64.b64decode(self.run(script).stdout)
        self._trees.update(wanted)
        if not data:
            return
        # errorlevel 0: a file the stream holds twice (a unit linked under two names) is not fatal.
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz", errorlevel=0) as archive:
            for member in archive:
                self._keep(member, archive)

    def _keep(self, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        path = "/" + member.name.strip("/")
        self._children.setdefault(path, set())
        parent, name = posixpath.split(path)
        while name:  # every folder on the way is one, whatever the stream says of it
            self._children.setdefault(parent, set()).add(name)
            self._kinds.setdefault(parent, DIRECTORY)
            parent, name = posixpath.split(parent)
        if member.issym():
            self._links[path] = member.linkname
        elif member.isfile() or member.islnk():
            self._kinds[path] = FILE
            self._files[path] = archive.extractfile(member).read()
        elif member.isdir():
            self._kinds[path] = DIRECTORY
        else:
            self._kinds[path] = OTHER

    def _in_tree(self, path: str) -> bool:
        """PATH lies in a tree read whole (so what the tree does not hold is not there)."""
        folder = path
        while True:
            if folder in self._trees:
                return True
            if folder in ("/", ""):
                break
            folder = posixpath.dirname(folder)
        return any(_matches(path, tree.strip("/").split("/")) for tree in self._trees if "*" in tree)
