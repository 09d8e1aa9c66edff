"""libvirt's own networks on a host (its default is virbr0 on 192.168.122.0/24 with a
dnsmasq of its own): what /etc/libvirt/qemu/networks defines, which start with
libvirtd (autostart/), which run now (/run/libvirt/network), read with ElementTree
from the XML libvirt itself writes. Nothing here talks to libvirtd."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from xml.etree import ElementTree

from lxc_compliance.readers.machine import THIS_HOST, Host

NETWORKS = "/etc/libvirt/qemu/networks"
RUNNING = "/run/libvirt/network"


@dataclass(frozen=True)
class LibvirtNetwork:
    """One network as its XML defines it."""

    name: str
    bridge: str
    # Its IPv4 address on the bridge with the prefix (None: no IPv4).
    address: ipaddress.IPv4Interface | None
    dhcp: tuple[str, str] | None
    # nat, route, open, bridge... ; None where it has no <forward> (isolated).
    forward: str | None
    autostart: bool = False
    running: bool = False

    @classmethod
    def parse(cls, text: str, autostart: bool = False, running: bool = False) -> "LibvirtNetwork":
        """A network's XML.

        >>> net = LibvirtNetwork.parse("<network><name>default</name><bridge name='virbr0'/><forward/>"
        ...     "<ip address='192.168.122.1' netmask='255.255.255.0'><dhcp><range start='192.168.122.2' "
        ...     "end='192.168.122.254'/></dhcp></ip></network>")
        >>> net.bridge, str(net.address), net.forward, net.dhcp
        ('virbr0', '192.168.122.1/24', 'nat', ('192.168.122.2', '192.168.122.254'))
        """
        root = ElementTree.fromstring(text)
        forward = root.find("forward")
        address = dhcp = None
        for ip in root.findall("ip"):
            if ip.get("family", "ipv4") != "ipv4" or not ip.get("address"):
                continue
            prefix = ip.get("prefix") or ip.get("netmask") or "24"
            address = ipaddress.ip_interface(f"{ip.get('address')}/{prefix}")
            span = ip.find("dhcp/range")
            dhcp = (span.get("start"), span.get("end")) if span is not None else None
            break
        bridge = root.find("bridge")
        return cls(root.findtext("name", ""), bridge.get("name", "") if bridge is not None else "", address, dhcp,
                   (forward.get("mode") or "nat") if forward is not None else None, autostart, running)

    def describe(self) -> str:
        """One line.

        >>> LibvirtNetwork("default", "virbr0", ipaddress.ip_interface("192.168.122.1/24"), None, "nat", True).describe()
        'default: virbr0 192.168.122.1/24, forward nat, no DHCP, starts with libvirtd, not running'
        """
        return (f"{self.name}: {self.bridge or '(no bridge)'} {self.address or 'no IPv4'}, "
                f"forward {self.forward or 'none (isolated)'}, "
                + (f"DHCP {self.dhcp[0]}-{self.dhcp[1]}" if self.dhcp else "no DHCP")
                + f", {'starts with libvirtd' if self.autostart else 'started by hand'}, "
                + ("running" if self.running else "not running"))


def libvirt_networks(host: Host = THIS_HOST) -> list[LibvirtNetwork] | None:
    """Every network libvirt defines on HOST; None where libvirt's network configuration is not installed."""
    names = host.listdir(NETWORKS)
    if names is None:
        return None
    autostart = set(host.listdir(f"{NETWORKS}/autostart") or [])
    running = set(host.listdir(RUNNING) or [])
    found = []
    for name in sorted(n for n in names if n.endswith(".xml")):
        text = host.text(f"{NETWORKS}/{name}")
        if text:
            try:
                found.append(LibvirtNetwork.parse(text, name in autostart, name in running))
            except ElementTree.ParseError:
                continue
    return found
