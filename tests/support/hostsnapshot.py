"""What a read-only audit must leave as it found it: kernel settings, links and
addresses, files under /etc (subuid, subgid, lxc, pam.d among them), what the
LXC paths hold, every container that was there (its folder, config, rootfs
listing, the files an audit could touch, running or not), the leases of every
dnsmasq, users' crontabs, and long-lived processes."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import psutil

# Counters and statistics under /proc/sys that move on their own.
VOLATILE_SYSCTLS = re.compile(
    r"^(kernel\.random\.|kernel\.ns_last_pid|kernel\.pty\.nr|fs\.dentry-state|fs\.file-nr|fs\.inode-(nr|state)|"
    r"fs\.aio-nr|fs\.quota\.|net\.netfilter\.nf_conntrack_count|kernel\.sched_domain\.|fs\.fscache\.|"
    r"kernel\.tainted|vm\.stat_refresh|net\.ipv4\.route\.flush|net\.ipv6\.route\.flush|fs\.binfmt_misc\.)"
)


@dataclass
class HostSnapshot:
    sysctls: dict[str, str]
    links: dict[str, tuple]
    etc: dict[str, str]
    lxc: list[str]
    daemons: dict[tuple[int, float], str]
    containers: dict[str, dict]
    leases: dict[str, tuple]
    crontabs: dict[str, str]

    @classmethod
    def take(cls) -> "HostSnapshot":
        return cls(_sysctls(), _links(), _etc_hashes(), _lxc_paths(), _daemons(), _containers(), _leases(),
                   _crontabs())

    def differences(self, after: "HostSnapshot") -> list[str]:
        """What AFTER has that differs from this snapshot, one line each."""
        found = []
        for name, before_container in self.containers.items():
            now = after.containers.get(name)
            if now is None:
                found.append(f"container {name}: removed")
                continue
            found += [f"container {name}: {key} {before_container[key]!r} -> {now[key]!r}"
                      for key in before_container if before_container[key] != now.get(key)]
        for name in ("sysctls", "links", "etc", "leases", "crontabs"):
            before_map, after_map = getattr(self, name), getattr(after, name)
            for key in sorted(set(before_map) | set(after_map)):
                if before_map.get(key) != after_map.get(key):
                    found.append(f"{name} {key}: {before_map.get(key)!r} -> {after_map.get(key)!r}")
        found += [f"lxc path {p}: removed" for p in sorted(set(self.lxc) - set(after.lxc))]
        found += [f"lxc path {p}: added" for p in sorted(set(after.lxc) - set(self.lxc))]
        found += [f"process {pid} left running: {cmd}" for (pid, _), cmd in after.daemons.items()
                  if (pid, _) not in self.daemons]
        return found


def _sysctls() -> dict[str, str]:
    values = {}
    for root, _, files in os.walk("/proc/sys"):
        for file in files:
            path = os.path.join(root, file)
            key = path[len("/proc/sys/"):].replace("/", ".")
            if VOLATILE_SYSCTLS.match(key):
                continue
            try:
                values[key] = Path(path).read_text().strip()
            except OSError:
                continue  # write-only or refused
    return values


def _links() -> dict[str, tuple]:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        addresses: dict[int, list[str]] = {}
        for address in ipr.get_addr():
            addresses.setdefault(address["index"], []).append(f"{address.get_attr('IFA_ADDRESS')}/{address['prefixlen']}")
        # Administrative state, not operstate: a bridge whose last port left is DOWN
        # where it was UNKNOWN before it had any, with nothing changed by anyone.
        return {link.get_attr("IFLA_IFNAME"): ("up" if link["flags"] & 1 else "down", link.get_attr("IFLA_MTU"),
                                                tuple(sorted(addresses.get(link["index"], []))))
                for link in ipr.get_links()}


def _etc_hashes() -> dict[str, str]:
    hashes = {}
    for root, _, files in os.walk("/etc"):
        for file in files:
            path = os.path.join(root, file)
            try:
                if os.path.islink(path):
                    hashes[path] = "-> " + os.readlink(path)
                elif os.path.isfile(path):
                    hashes[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
            except OSError:
                continue
    return hashes


def _lxc_paths() -> list[str]:
    from lxc_compliance.readers.lxc import lxc_paths

    # The suite's own gold images are its cache, kept between runs on purpose.
    return sorted(str(entry) for path in lxc_paths() for entry in path.iterdir() if not entry.name.startswith("lxcc-gold-"))


def _daemons() -> dict[tuple[int, float], str]:
    """Processes that outlive whoever started them (reparented to init), by (pid, start time)."""
    found = {}
    for process in psutil.process_iter(["pid", "ppid", "create_time", "cmdline", "name"]):
        info = process.info
        if info["ppid"] in (1,) and info["cmdline"]:
            found[(info["pid"], info["create_time"])] = " ".join(info["cmdline"])[:200]
    return found


# Files of a container an audit or a careless lab could touch, hashed by content.
TOUCHABLE = ("etc/shadow", "etc/passwd", "etc/group", "etc/machine-id", "etc/hostname", "etc/network/interfaces",
             "etc/pam.d/sshd", "etc/pam.d/cron", "etc/apt/preferences.d", "var/lib/dhcp", "etc/ssh")


def _containers() -> dict[str, dict]:
    """Every container defined on the host but the suite's own gold images (its cache):
    folder listing, config, rootfs listing (path, mode, owner, size), touchable files, state."""
    import subprocess

    from lxc_compliance.readers.formats import LxcConfig
    from lxc_compliance.readers.lxc import lxc_paths

    found = {}
    for lxcpath in lxc_paths():
        for config in sorted(lxcpath.glob("*/config")):
            folder = config.parent
            if folder.name.startswith("lxcc-gold-"):
                continue
            rootfs_value = LxcConfig.parse(config.read_text(errors="replace")).get("lxc.rootfs.path") or ""
            rootfs = Path(rootfs_value.split(":")[-1]) if rootfs_value else folder / "rootfs"
            state = subprocess.run(["lxc-info", "-P", str(lxcpath), "-n", folder.name, "-s", "-H"],
                                   capture_output=True, text=True, timeout=20).stdout.strip()
            found[str(folder)] = {
                "folder": sorted(p.name for p in folder.iterdir()),
                "config": hashlib.sha256(config.read_bytes()).hexdigest()[:16],
                "rootfs": _listing(rootfs),
                "touchable": {name: _content(rootfs / name) for name in TOUCHABLE},
                "state": state,
            }
    return found


def _listing(root: Path) -> str:
    digest = hashlib.sha256()
    for directory, folders, files in os.walk(root):
        folders.sort()
        for name in sorted(files) + folders:
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            digest.update(f"{os.path.relpath(path, root)} {info.st_mode:o} {info.st_uid}:{info.st_gid} "
                          f"{info.st_size if not os.path.isdir(path) else 0}\n".encode())
    return digest.hexdigest()[:16]


def _content(path: Path) -> str:
    if path.is_dir():
        return ",".join(f"{p.name}={_content(p)}" for p in sorted(path.iterdir()))
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except OSError:
        return "absent"


def _leases() -> dict[str, tuple]:
    """The leases (MAC, address, hostname) in the lease file of every running dnsmasq."""
    from lxc_compliance.readers.dnsmasq import dnsmasq_processes, read_leases

    files = {process.config.leasefile for process in dnsmasq_processes()}
    return {path: tuple(sorted((lease.mac, lease.address, lease.hostname) for lease in read_leases(path)))
            for path in sorted(files)}


def _crontabs() -> dict[str, str]:
    folder = Path("/var/spool/cron/crontabs")
    return {str(path): _content(path) for path in sorted(folder.glob("*"))} if folder.is_dir() else {}
