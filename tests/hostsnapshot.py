"""What a read-only audit must leave as it found it: kernel settings, links and
addresses, files under /etc, what the LXC paths hold, and long-lived processes."""

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

    @classmethod
    def take(cls) -> "HostSnapshot":
        return cls(_sysctls(), _links(), _etc_hashes(), _lxc_paths(), _daemons())

    def differences(self, after: "HostSnapshot") -> list[str]:
        """What AFTER has that differs from this snapshot, one line each."""
        found = []
        for name in ("sysctls", "links", "etc"):
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

    return sorted(str(entry) for path in lxc_paths() for entry in path.iterdir())


def _daemons() -> dict[tuple[int, float], str]:
    """Processes that outlive whoever started them (reparented to init), by (pid, start time)."""
    found = {}
    for process in psutil.process_iter(["pid", "ppid", "create_time", "cmdline", "name"]):
        info = process.info
        if info["ppid"] in (1,) and info["cmdline"]:
            found[(info["pid"], info["create_time"])] = " ".join(info["cmdline"])[:200]
    return found
