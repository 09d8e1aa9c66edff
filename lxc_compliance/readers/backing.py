"""The storage a container's root filesystem comes from, and whether its host can mount it.

LXC names the backing store by the prefix of ``lxc.rootfs.path`` (``overlay:``,
``btrfs:``, ``lvm:``, ``zfs:``, ``loop:``, ``rbd:``, ``nbd:``, ``dir:``); a bare path is
detected as liblxc's ``storage_query`` does (src/lxc/storage/storage.c), in its order: a
directory is ``dir``, a block device whose device-mapper uuid starts ``LVM-`` is ``lvm``,
a regular file is ``loop``. What each needs on the host it lives on is what its
``*_mount`` needs there: overlay (and an upper directory on a filesystem overlay can
write to), btrfs under the path, device-mapper and the volume, the ZFS dataset, loop
devices. Every read goes through the one Host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxc_compliance.readers.machine import DIRECTORY, FILE, THIS_HOST, Host
from lxc_compliance.readers.room import FilesystemRoom

# liblxc's storage types, in the order storage_query() tries them (overlayfs: overlay's old name).
KINDS = ("dir", "zfs", "lvm", "rbd", "btrfs", "overlay", "overlayfs", "loop", "nbd")
# Filesystems overlay cannot take an upper (written) directory on: read-only ones, and those
# without the xattrs and file handles it needs (overlayfs' Documentation: "upper filesystem").
NO_OVERLAY_UPPER = {"nfs": "NFS", "nfs4": "NFS", "cifs": "CIFS", "smb2": "SMB", "fuseblk": "FUSE", "fuse": "FUSE",
                    "overlayfs": "overlay", "aufs": "aufs", "squashfs": "squashfs (read-only)",
                    "iso9660": "ISO 9660 (read-only)", "erofs": "EROFS (read-only)"}
# Union filesystems kernels once had and current ones do not (aufs was never in mainline; Debian's
# kernels dropped it after buster), with what replaces them.
GONE_UNIONS = {"aufs": "overlay", "unionfs": "overlay"}


def kernel_filesystems(host: Host = THIS_HOST) -> set[str]:
    """The filesystem types the running kernel has now (/proc/filesystems).

    >>> class H(Host):
    ...     def text(self, path): return "nodev\\tsysfs\\n\\text4\\nnodev\\toverlay\\n"
    >>> sorted(kernel_filesystems(H()))
    ['ext4', 'overlay', 'sysfs']
    """
    return {line.split()[-1] for line in (host.text("/proc/filesystems") or "").splitlines() if line.strip()}


@dataclass(frozen=True)
class BackingStore:
    """A root filesystem's storage: its LXC type and what it names (a folder, a device, a dataset)."""

    kind: str
    source: str
    # An overlay's lower and upper folders.
    lower: str = ""
    upper: str = ""

    # Whether KIND came from the value's own prefix (else it is what a bare path looks like).
    named: bool = True

    @classmethod
    def parse(cls, value: str, default: str) -> "BackingStore":
        """lxc.rootfs.path VALUE (DEFAULT: the path LXC uses when it is unset) by its text alone:
        a bare path is taken for a folder until ``of`` looks at what is there.

        >>> BackingStore.parse("overlay:/var/lib/lxc/gold/rootfs:/var/lib/lxc/pc1/delta0", "")
        BackingStore(kind='overlay', source='/var/lib/lxc/pc1/delta0', lower='/var/lib/lxc/gold/rootfs', upper='/var/lib/lxc/pc1/delta0', named=True)
        >>> BackingStore.parse("lvm:/dev/lxc/pc1", "").kind, BackingStore.parse("zfs:tank/lxc/pc1", "").source
        ('lvm', 'tank/lxc/pc1')
        >>> BackingStore.parse("", "/var/lib/lxc/pc1/rootfs").named
        False
        """
        value = value or default
        kind, _, rest = value.partition(":")
        if kind in KINDS and rest:
            kind = "overlay" if kind == "overlayfs" else kind
            if kind == "overlay":
                # overlay:LOWER:UPPER (lxc-copy -s -B overlay writes it so).
                lower, _, upper = rest.rpartition(":")
                return cls(kind, upper or rest, lower, upper)
            return cls(kind, rest)
        return cls("dir", value, named=False)

    @classmethod
    def of(cls, value: str, default: str, host: Host = THIS_HOST) -> "BackingStore":
        """Of VALUE as liblxc reads it on HOST: a bare path by what is there."""
        parsed = cls.parse(value, default)
        return parsed if parsed.named else cls(cls._detected(parsed.source, host), parsed.source, named=False)

    @property
    def folders(self) -> list[str]:
        """Where its files are read as folders: [the folder], or an overlay's [upper, lower]."""
        return [self.upper, self.lower] if self.kind == "overlay" and self.lower else [self.source]

    @staticmethod
    def _detected(path: str, host: Host) -> str:
        found = host.kind(path)
        if found == DIRECTORY:
            return "dir"
        if found == FILE:
            return "loop"
        if host.run("test -b %s", path).rc == 0:
            return "lvm" if (_dm_uuid(path, host) or "").startswith("LVM-") else "block"
        return "dir"  # nothing there: lxc-start fails at mounting it (fleet.rootfs names the folder)

    def problem(self, host: Host = THIS_HOST) -> tuple[str | None, str]:
        """(why HOST cannot mount it, or None; what was found there)."""
        return getattr(self, f"_{self.kind}", self._unknown)(host)

    # One reader per type: (problem or None, found).

    def _dir(self, host: Host):
        there = host.is_dir(self.source)
        return (None if there else f"{self.source} is no directory"), f"a folder{'' if there else ' that is missing'}"

    def _overlay(self, host: Host):
        if "overlay" not in kernel_filesystems(host):
            return "this kernel has no overlay filesystem (/proc/filesystems)", "overlay not in the kernel"
        for role, path in (("lower (the gold's rootfs)", self.lower), ("upper", self.upper)):
            if not host.is_dir(path):
                return f"its {role} folder {path} is missing", f"{role} {path} missing"
        room = FilesystemRoom.of(self.upper, host)
        fstype = room.fstype if room else "unknown"
        if fstype in NO_OVERLAY_UPPER:
            return (f"its upper folder {self.upper} is on {NO_OVERLAY_UPPER[fstype]}, which overlay cannot write to",
                    f"upper on {fstype}")
        return None, f"lower {self.lower}, upper {self.upper} on {fstype}"

    def _btrfs(self, host: Host):
        room = FilesystemRoom.of(self.source, host)
        fstype = room.fstype if room else "unknown"
        if fstype != "btrfs":
            return f"{self.source} is on {fstype}, not btrfs: LXC cannot make or mount its subvolume", f"on {fstype}"
        inode = host.run("stat -c %%i %s", self.source).stdout.strip()
        if inode != "256":  # a btrfs subvolume's root has inode 256 (btrfs_detect)
            return f"{self.source} is no btrfs subvolume (inode {inode or '?'}, a subvolume's is 256)", "not a subvolume"
        return None, f"a btrfs subvolume at {self.source}"

    def _lvm(self, host: Host):
        if "device-mapper" not in (host.text("/proc/devices") or ""):
            return "this kernel has no device-mapper (/proc/devices; dm_mod not loaded)", "no device-mapper"
        if host.run("test -b %s", self.source).rc != 0:
            return f"there is no block device {self.source} (lvs lists the volumes)", f"{self.source} missing"
        uuid = _dm_uuid(self.source, host) or ""
        if not uuid.startswith("LVM-"):
            return f"{self.source} is no LVM logical volume (device-mapper uuid '{uuid}')", "not an LVM volume"
        return None, f"LVM volume {self.source}"

    def _zfs(self, host: Host):
        if "zfs" not in kernel_filesystems(host):
            return "this kernel has no ZFS (/proc/filesystems; zfs module not loaded)", "no zfs in the kernel"
        if host.which("zfs") is None:
            return "the zfs program is missing (zfsutils-linux)", "no zfs program"
        if host.run("zfs list -H -o name %s", self.source).rc != 0:
            return f"there is no ZFS dataset {self.source} (zfs list)", f"{self.source} missing"
        return None, f"ZFS dataset {self.source}"

    def _loop(self, host: Host):
        if not host.is_file(self.source):
            return f"its image {self.source} is missing", "image missing"
        if host.run("test -c /dev/loop-control").rc != 0:
            return "this host has no loop devices (/dev/loop-control; the loop module)", "no loop devices"
        return None, f"an image file {self.source}"

    def _rbd(self, host: Host):
        if host.which("rbd") is None or not host.is_dir("/sys/bus/rbd"):
            return "Ceph's rbd program (ceph-common) or the kernel's rbd driver (/sys/bus/rbd) is missing", "no rbd"
        return None, f"a Ceph RBD image {self.source}"

    def _nbd(self, host: Host):
        if host.which("qemu-nbd") is None or not host.exists("/sys/block/nbd0"):
            return "qemu-nbd (qemu-utils) or the kernel's nbd devices (/sys/block/nbd0) are missing", "no nbd"
        return None, f"an nbd image {self.source}"

    def _block(self, host: Host):
        return f"{self.source} is a block device but no LVM volume: LXC has no storage driver for it", "a block device"

    def _unknown(self, host: Host):
        return f"LXC has no storage driver {self.kind} for {self.source}", self.kind


def _dm_uuid(device: str, host: Host) -> str | None:
    """A block device's device-mapper uuid (LVM's start 'LVM-'), from /sys/dev/block/MAJ:MIN/dm/uuid."""
    numbers = host.run("stat -L -c '%%t %%T' %s", device).stdout.split()
    if len(numbers) != 2:
        return None
    major, minor = (int(n, 16) for n in numbers)
    return (host.text(f"/sys/dev/block/{major}:{minor}/dm/uuid") or "").strip() or None


@dataclass(frozen=True)
class FstabEntry:
    """One /etc/fstab line (fstab(5)): what is mounted where, as which type, with which options."""

    where: str
    line: str
    spec: str
    file: str
    vfstype: str
    options: str = "defaults"


def _fstab_field(text: str) -> str:
    # fstab(5) writes a space as \040 and a tab as \011 inside a field.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def parse_fstab(text: str, source: str) -> list[FstabEntry]:
    """The entries of fstab TEXT (SOURCE: its path), comments and short lines left out.

    >>> [(e.where, e.file, e.vfstype) for e in parse_fstab(
    ...     "# static\\nnone /home/inst/.local/share/lxc/pc1/rootfs aufs br=a=rw:b=ro 0 0\\n/dev/sda1 /my\\\\040disk ext4", "/etc/fstab")]
    [('/etc/fstab:2', '/home/inst/.local/share/lxc/pc1/rootfs', 'aufs'), ('/etc/fstab:3', '/my disk', 'ext4')]
    """
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = [] if line.lstrip().startswith("#") else line.split()  # only whole lines are comments
        if len(fields) >= 3:
            spec, file, vfstype = (_fstab_field(f) for f in fields[:3])
            entries.append(FstabEntry(f"{source}:{number}", line.strip(), spec, file, vfstype,
                                      fields[3] if len(fields) > 3 else "defaults"))
    return entries


@dataclass(frozen=True)
class UnionLine:
    """An /etc/fstab line mounting a union filesystem the kernel may no longer have."""

    where: str
    line: str
    fstype: str
    target: str
    # Whether the running kernel has the type (/proc/filesystems).
    kernel_has: bool

    @property
    def replacement(self) -> str:
        return GONE_UNIONS[self.fstype]


def union_lines(host: Host = THIS_HOST) -> list[UnionLine]:
    """The /etc/fstab lines that mount aufs or unionfs (the AfNOG workshop recipe's aufs clones)."""
    present = kernel_filesystems(host)
    return [UnionLine(entry.where, entry.line, entry.vfstype, entry.file, entry.vfstype in present)
            for entry in parse_fstab(host.text("/etc/fstab") or "", "/etc/fstab") if entry.vfstype in GONE_UNIONS]
