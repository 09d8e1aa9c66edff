"""Another host, reached over ssh (testinfra's ssh backend: one multiplexed
connection). What the readers ask is read in batches (``prefetch``,
``prefetch_programs``, ``prefetch_trees``: one command each) and kept; anything
else is one command over the connection. ``snapshot`` and ``seed`` hand what was
read to another process (an xdist worker). Nothing is written on that host."""

from __future__ import annotations

import base64
import io
import posixpath
import shlex
import tarfile

from lxc_compliance.readers.machine import (ABSENT, DIRECTORY, FILE, OTHER, RELEASE, Account, FileInfo, Host, Link,
                                            Process, Result, UdpSocket)
from lxc_compliance.readers.remote_shell import (CGROUP_MOUNTS, PART, PROGRAMS, READ_MANY, RUN_MANY, glob_word,
                                                 link_from_ip, matches, parse_ss)


class _EveryPath:
    """The paths wanted where the shell chose them: every one it names."""

    def __contains__(self, path: str) -> bool:
        return True


_EVERY_PATH = _EveryPath()


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
        # Each directory prefetch listed -> its entries.
        self._listings: dict[str, list[str]] = {}
        # What the read-only commands prefetch_runs ran printed, by command.
        self._runs: dict[str, Result] = {}

    def run(self, command: str, *args: str, timeout: float | None = None) -> Result:
        """COMMAND there (ARGS quoted into its %s). A RuntimeError where ssh itself fails."""
        if not args and command in self._runs:
            return self._runs[command]  # read ahead (prefetch_runs): the same command, read-only
        return self._run(command, *args)

    def _run(self, command: str, *args: str, stdout_errors: str = "replace") -> Result:
        """COMMAND over the connection. Decoded here: testinfra's own decoding of output that is
        not ASCII asks the host for its encoding (one more command) and fails on bytes that are not
        that encoding. STDOUT_ERRORS "surrogateescape": ``.encode(errors=...)`` gives the bytes back."""
        done = self.connection.run(command, *args)
        return Result(done.rc, done.stdout_bytes.decode(errors=stdout_errors), done.stderr_bytes.decode(errors="replace"))

    # --- batches --------------------------------------------------------------------

    def prefetch(self, paths) -> None:
        """Read PATHS (those not read yet) in one command."""
        self.prefetch_batch(paths)

    def prefetch_programs(self, programs) -> None:
        """Find PROGRAMS and read their mode, owner and file capabilities, in one command."""
        self.prefetch_batch(programs=programs)

    def prefetch_runs(self, commands) -> None:
        """Run the read-only COMMANDS in one command; ``run`` answers each from what it printed."""
        self.prefetch_batch(commands=commands)

    def prefetch_batch(self, paths=(), programs=(), commands=(), first: str | None = None,
                       in_cgroup_mounts=()) -> Result | None:
        """What prefetch, prefetch_programs and prefetch_runs read (what was not read yet), in one
        command; FIRST before them (its Result returned: None without it), and the files
        IN_CGROUP_MOUNTS (names) of each cgroup mount the host has. PATHS may hold RELEASE."""
        parts = [(script, wanted, take) for script, wanted, take in (
            (READ_MANY, [p for p in dict.fromkeys(paths) if p not in self._kinds], self._take_paths),
            (PROGRAMS, [p for p in dict.fromkeys(programs) if p not in self._which], self._take_programs),
            (RUN_MANY, [c for c in dict.fromkeys(commands) if c not in self._runs], self._take_runs)) if wanted]
        if not parts and first is None:
            return None
        lines = ["sh -c %s sh" + " %s" * len(wanted) for _, wanted, _ in parts]
        words = [word for script, wanted, _ in parts for word in (script, *wanted)]
        if in_cgroup_mounts:  # their folders are known there only: the shell names them
            names = " ".join(shlex.quote(name) for name in in_cgroup_mounts)
            lines.append(f"sh -c %s sh $({CGROUP_MOUNTS} | while read -r m; do for n in {names}; do "
                         "printf '%%s/%%s\\n' \"$m\" \"$n\"; done; done)")
            words.append(READ_MANY)
            parts.append((READ_MANY, None, self._take_paths))
        if first is not None:
            lines.insert(0, f"{{ {first.replace('%', '%%')}; }}")
        result = self._run(f"; echo {PART}; ".join(lines), *words, stdout_errors="surrogateescape")
        outputs = result.stdout.split(f"{PART}\n")
        if first is not None:
            result = Result(result.rc, outputs.pop(0).encode(errors="surrogateescape").decode(errors="replace"),
                            result.stderr)
        for (_, wanted, take), output in zip(parts, outputs):
            take(wanted, output)
        return result if first is not None else None

    def _take_paths(self, wanted: list[str] | None, output: str) -> None:
        """Keep what READ_MANY printed of WANTED (None: of every path it names)."""
        lines = [line for line in output.split("\n") if line]  # a T line's text may hold \r or \f: not splitlines
        if lines and lines[0].startswith("K "):  # the release the paths name (RELEASE)
            self._release = self._release or lines[0][2:].strip()
            wanted = None if wanted is None else [path.replace(RELEASE, self._release) for path in wanted]
            lines = lines[1:]
        wanted = _EVERY_PATH if wanted is None else set(wanted)
        for line in lines:
            kind, _, rest = line.partition(" ")
            if kind == "L":
                path, _, target = rest.partition("\t")
                if path in wanted:
                    self._readlinks[path] = target
                continue
            if kind == "T":  # one line of kernel text, as the shell read it
                path, _, line_read = rest.partition("\t")
                if path in wanted:
                    self._kinds[path] = FILE
                    self._readlinks.setdefault(path, None)
                    self._files[path] = (line_read + "\n").encode(errors="surrogateescape")
                continue
            if kind == FILE:
                path, _, data = rest.rpartition(" ")
            elif kind == DIRECTORY:
                path, listed, data = rest.partition("\t")
                if path in wanted and listed:
                    self._listings[path] = sorted(base64.b64decode(data).decode(errors="replace").splitlines())
            else:
                path, data = rest, ""
            if path in wanted:
                self._kinds[path] = kind
                self._readlinks.setdefault(path, None)  # its L line, where it is a link, came first
                if kind == FILE:
                    self._files[path] = base64.b64decode(data)

    def _take_programs(self, wanted: list[str], output: str) -> None:
        found, current = [], None
        for line in output.splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "W":
                program, _, path = rest.partition(" ")
                self._which[program] = path or None
                if path:
                    found.append(path)
            elif kind == "S":
                mode, uid, path = (rest.split(" ", 2) + ["", ""])[:3]
                self._info[path] = FileInfo(int(mode, 16), int(uid))
            elif line.startswith("# file: "):
                current = line[len("# file: "):]
            elif current is not None and line.startswith("security.capability=0x"):
                self._xattr[current] = bytes.fromhex(line.partition("=0x")[2])
        for path in found:  # no block of getfattr's: no file capabilities (or no getfattr there)
            self._info.setdefault(path, None)
            self._xattr.setdefault(path, None)

    def _take_runs(self, wanted: list[str], output: str) -> None:
        for line in output.splitlines():
            kind, index, rc, out, err = (line.split(" ") + ["", "", "", ""])[:5]
            if kind == "R" and index.isdigit() and int(index) < len(wanted) and rc.isdigit():
                self._runs[wanted[int(index)]] = Result(int(rc), base64.b64decode(out).decode(errors="replace"),
                                                        base64.b64decode(err).decode(errors="replace"))

    def snapshot(self) -> dict:
        """What was read, as JSON can carry it."""
        return {"kinds": self._kinds, "files": {p: base64.b64encode(d).decode() for p, d in self._files.items()},
                "which": self._which, "xattr": {p: d.hex() if d else None for p, d in self._xattr.items()},
                "info": {p: [i.mode, i.uid] if i else None for p, i in self._info.items()}, "release": self._release,
                "readlinks": self._readlinks, "listings": self._listings,
                "runs": {c: [r.rc, r.stdout, r.stderr] for c, r in self._runs.items()}}

    def seed(self, snapshot: dict) -> None:
        """Take what another process read (its ``snapshot``)."""
        self._kinds.update(snapshot.get("kinds", {}))
        self._files.update({p: base64.b64decode(d) for p, d in snapshot.get("files", {}).items()})
        self._which.update(snapshot.get("which", {}))
        self._xattr.update({p: bytes.fromhex(d) if d else None for p, d in snapshot.get("xattr", {}).items()})
        self._info.update({p: FileInfo(*i) if i else None for p, i in snapshot.get("info", {}).items()})
        self._release = snapshot.get("release") or self._release
        self._readlinks.update(snapshot.get("readlinks", {}))
        self._listings.update(snapshot.get("listings", {}))
        self._runs.update({c: Result(*r) for c, r in snapshot.get("runs", {}).items()})

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
        if path in self._listings:
            return self._listings[path]
        if self._kinds.get(path, DIRECTORY) != DIRECTORY:
            return None  # prefetch found no directory there
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
        found = [path for path in {*self._kinds, *self._links} if matches(path, parts)]
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
        words = " ".join(glob_word(p.lstrip("/")) for p in wanted)
        links = " ".join(glob_word(p.lstrip("/") + "/*.wants/*") for p in wanted if p.endswith("/etc/systemd/system"))
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
        return any(matches(path, tree.strip("/").split("/")) for tree in self._trees if "*" in tree)
