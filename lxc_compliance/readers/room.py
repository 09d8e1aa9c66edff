"""Room for the fleet on disk: what copies of a gold cost, and what the filesystem
under an lxcpath still has, read before anything is copied.

``lxc-copy`` makes a full copy of the gold's folder (its size and its inodes, once
per copy); an overlay clone (``lxc-copy -s -B overlay``) costs only what its upper
directory gets; each container then grows by what its students install, the budget
the profile sets (``host.disk_per_container``). ``FilesystemRoom`` is ``statvfs`` of
the filesystem (free to unprivileged users, as lxc-copy running as the owner sees it).
Every read goes through the one Host: ``du`` and ``stat -f`` answer on any host.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxc_compliance.readers.formats import parse_size
from lxc_compliance.readers.machine import THIS_HOST, Host


def human(size: int) -> str:
    """SIZE bytes in binary units, as df -h says it.

    >>> human(416 * 2**20), human(3 * 2**30 + 2**29), human(900)
    ('416M', '3.5G', '900B')
    """
    for unit, factor in (("T", 2**40), ("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if size >= factor:
            value = size / factor
            return f"{value:.1f}{unit}".replace(".0" + unit, unit) if value < 10 else f"{value:.0f}{unit}"
    return f"{size}B"


@dataclass(frozen=True)
class FilesystemRoom:
    """The filesystem PATH lives on: its type, free bytes and free inodes (for unprivileged users)."""

    path: str
    fstype: str
    free_bytes: int
    free_inodes: int

    @classmethod
    def of(cls, path: str, host: Host = THIS_HOST) -> "FilesystemRoom | None":
        """Of PATH, or of its nearest folder that exists (an lxcpath not made yet); None where none."""
        while path not in ("", "/") and not host.exists(path):
            path = path.rsplit("/", 1)[0] or "/"
        done = host.run("stat -f -L -c '%%a %%S %%d %%T' %s", path)
        fields = done.stdout.split()
        if done.rc != 0 or len(fields) < 4:
            return None
        available, block, inodes = (int(n) for n in fields[:3])
        return cls(path, fields[3], available * block, inodes)


@dataclass(frozen=True)
class FolderCost:
    """What a container folder holds on disk (hard links once) and its inodes."""

    size: int
    inodes: int

    @classmethod
    def of(cls, path: str, host: Host = THIS_HOST) -> "FolderCost | None":
        size = host.run("du -s -x --block-size=1 %s", path, timeout=300)
        inodes = host.run("du -s -x --inodes %s", path, timeout=300)
        try:
            return cls(int(size.stdout.split()[0]), int(inodes.stdout.split()[0]))
        except (IndexError, ValueError):
            return None


@dataclass(frozen=True)
class RoomNeed:
    """COPIES more containers cloned from a gold of COST (full copies, or overlay clones)
    into the filesystem ROOM, each with BUDGET bytes for what gets installed in it."""

    room: FilesystemRoom
    cost: FolderCost
    copies: int
    clone: str
    budget: int = 0
    # Containers made already, which grow by the budget as well.
    grown: int = 0

    @property
    def needed_bytes(self) -> int:
        """Bytes the copies need: each the gold's size when full, plus the budget."""
        return self.copies * ((self.cost.size if self.clone == "copy" else 0) + self.budget) + self.grown * self.budget

    @property
    def needed_inodes(self) -> int:
        return self.copies * (self.cost.inodes if self.clone == "copy" else 16)

    @property
    def shortfalls(self) -> list[str]:
        """What the filesystem lacks, in words (empty: room for all).

        >>> room = FilesystemRoom("/var/lib/lxc", "ext4", 300 * 2**20, 10**6)
        >>> RoomNeed(room, FolderCost(416 * 2**20, 20000), 2, "copy").shortfalls
        ['2 full copies of 416M need 832M on /var/lib/lxc (ext4), which has 300M free']
        """
        short = []
        if self.needed_bytes > self.room.free_bytes:
            short.append(f"{self.describe_need()} need {human(self.needed_bytes)} on {self.room.path} "
                         f"({self.room.fstype}), which has {human(self.room.free_bytes)} free")
        if self.needed_inodes > self.room.free_inodes:
            short.append(f"{self.copies} copies need {self.needed_inodes} inodes on {self.room.path}, "
                         f"which has {self.room.free_inodes} free")
        return short

    def describe_need(self) -> str:
        what = (f"{self.copies} full copies of {human(self.cost.size)}" if self.clone == "copy"
                else f"{self.copies} overlay clones")
        if self.budget:
            what += f" and {human(self.budget)} for what gets installed in each" + (
                f" (and in the {self.grown} made already)" if self.grown else "")
        return what

    def describe(self) -> str:
        return (f"{self.describe_need()}: {human(self.needed_bytes)} and {self.needed_inodes} inodes; "
                f"{self.room.path} ({self.room.fstype}) has {human(self.room.free_bytes)} and "
                f"{self.room.free_inodes} inodes free")


def budget_bytes(text) -> int:
    """The per-container budget ('512M', '2G'; unset: 0).

    >>> budget_bytes("512M"), budget_bytes(None)
    (536870912, 0)
    """
    return (parse_size(str(text)) or 0) if text else 0


def planned_fleet_room(host: Host, lxcpath: str, gold: str, planned: int, clone: str, budget: int) -> "RoomNeed | str":
    """Room on LXCPATH's filesystem for PLANNED containers cloned from GOLD there, those not made
    yet as copies of it and every one with BUDGET; or why it cannot be told (a string)."""
    names = host.listdir(lxcpath)
    if names is None:
        # Said as the missing gold it means: an owner who has made no container has no lxcpath yet.
        return f"there is no gold container {gold} to size the copies by ({lxcpath} does not exist)"
    if gold not in names or not host.is_file(f"{lxcpath}/{gold}/config"):
        return f"there is no gold container {gold} in {lxcpath} to size the copies by"
    made = [n for n in names if n != gold and not n.startswith("lxcc-gold-") and host.is_file(f"{lxcpath}/{n}/config")]
    room, cost = FilesystemRoom.of(lxcpath, host), FolderCost.of(f"{lxcpath}/{gold}", host)
    if room is None or cost is None:
        return f"{lxcpath} could not be measured (stat -f, du)"
    # The copies still to make cost the gold each; the ones made already hold theirs, and grow by the budget.
    return RoomNeed(room, cost, max(0, planned - len(made)), clone, budget, grown=min(len(made), planned))
