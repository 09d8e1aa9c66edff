"""What a profile asks of the host, its network and its containers, in the
terms the checks compare against: built by the plugin's fixtures from profile
values, read by the checks (the readers say what is there)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from lxc_compliance.model.sizes import format_size, parse_size

# The memory limit a sample container gets where the profile sets no containers.memory_limit
# (not a schema default: that key is also the limit the event's own containers must have).
SAMPLE_MEMORY_LIMIT = "512M"


@dataclass(frozen=True)
class WantedLimits:
    """The memory limits the profile wants each container to have."""

    memory_setting: str
    memsw_setting: str | None

    @property
    def memory(self) -> int:
        return parse_size(self.memory_setting)

    @property
    def memory_text(self) -> str:
        return format_size(self.memory)

    @property
    def memsw(self) -> int | None:
        return parse_size(self.memsw_setting) if self.memsw_setting else None

    @property
    def memsw_text(self) -> str:
        return format_size(self.memsw) if self.memsw else "none"


@dataclass(frozen=True)
class FleetLimits:
    """The memory limits every fleet container must have (fleet.*, else containers.*)."""

    memory_setting: str | None
    memsw_setting: str | None

    @property
    def memory(self) -> int | None:
        return parse_size(self.memory_setting) if self.memory_setting else None

    @property
    def memsw(self) -> int | None:
        return parse_size(self.memsw_setting) if self.memsw_setting else None

    @staticmethod
    def text(size: int | None) -> str:
        return format_size(size) if size else "none"


@dataclass(frozen=True)
class AddressPlan:
    """Where each sample's address must come from: its static address, or the DHCP range."""

    static: list[str]
    dhcp_range: tuple[str | None, str | None]

    def range_for(self, index: int) -> tuple[str | None, str | None]:
        """(first, last) address sample INDEX may have (first None: any)."""
        if self.static:
            address = self.static[index - 1].split("/")[0]
            return address, address
        return self.dhcp_range

    def describe(self, index: int) -> str:
        first, last = self.range_for(index)
        if self.static:
            return f"{first} (the static plan), unique in the fleet"
        return f"an address in {first}-{last}, unique in the fleet" if first else "an address unique in the fleet"

    def allows(self, index: int, address: str) -> bool:
        first, last = self.range_for(index)
        return first is None or ipaddress.ip_address(first) <= ipaddress.ip_address(address) <= ipaddress.ip_address(last)


@dataclass(frozen=True)
class SecurityPolicy:
    """What the profile's security: section allows."""

    allow_privileged: bool
    allow_nesting: bool
    forbidden_capabilities: tuple[str, ...]
    sensitive_paths: tuple[str, ...]

    @property
    def forbidden(self) -> set[str]:
        """The capabilities no container may keep. A privileged one keeps sys_admin by design:
        where the profile forbids privileged containers, that is security.unprivileged's one
        failure, not a second one here."""
        return set(self.forbidden_capabilities)


@dataclass(frozen=True)
class LxdPlan:
    """What the profile expects of the LXD host (the lxd: section)."""

    network: str
    nat: bool
    https_everywhere: bool
    instance_disk: str
    memory_limit: str | None
    containers: int
    # Who may be in the admin group (lxd, incus-admin): each member is root-equivalent.
    admins: tuple[str, ...] = ()
    # Whether instances may offer the guest API socket (/dev/lxd/sock, /dev/incus/sock).
    guest_api: bool = True


@dataclass
class NetworkUnderTest:
    """The bridge the run checks and what the profile expects of it."""

    bridge: str
    subnet: ipaddress.IPv4Network | None
    containers: int
    margin: int
    lab: object | None = None  # lab.network.LabNetwork, when the run built the bridge


@dataclass
class NetworkReadiness:
    """Whether samples started on the bridge can get an address: the first thing
    in the way (None: nothing), with the network check that names it."""

    problem: str | None = None
    check: str | None = None
    evidence: str = ""
