"""What a Host says of its network: a link as netlink reports it, and a UDP
socket with the process holding it (readers.machine's link() and udp_sockets())."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Link:
    """A network link as netlink reports it (``ip -d link``, ``ip addr``)."""

    name: str
    exists: bool = False
    kind: str | None = None  # 'bridge', 'veth', None for a physical NIC
    up: bool = False  # administratively (IFF_UP)
    mtu: int | None = None
    forward_delay: float | None = None  # seconds (netlink carries centiseconds)
    stp: bool | None = None
    ports: tuple[str, ...] = ()  # links enslaved to it
    addresses: tuple[str, ...] = ()  # IPv4 'ADDRESS/PREFIX'

    @property
    def networks(self) -> list:
        """IPv4 addresses with their prefix, e.g. 10.1.2.1/24."""
        import ipaddress

        return [ipaddress.ip_interface(address) for address in self.addresses]

    def describe(self) -> str:
        """One line of what the link is.

        >>> Link("br0", True, "bridge", True, 1500, 0.0, False, ("veth1",), ("10.0.3.1/24",)).describe()
        'br0: bridge, up, 10.0.3.1/24, forward delay 0.0s, STP off, MTU 1500, ports: veth1'
        """
        if not self.exists:
            return f"no link {self.name}"
        addresses = ", ".join(map(str, self.networks)) or "no IPv4 address"
        return (f"{self.name}: {self.kind or 'not a bridge'}, {'up' if self.up else 'down'}, {addresses}, "
                f"forward delay {self.forward_delay}s, STP {'on' if self.stp else 'off'}, MTU {self.mtu}, "
                f"ports: {', '.join(self.ports) or 'none'}")


@dataclass(frozen=True)
class UdpSocket:
    """A UDP socket bound to a port, and the process holding it."""

    address: str
    device: str | None  # SO_BINDTODEVICE interface; None: every interface
    pid: int | None
    process: str
    port: int = 67

    def covers(self, bridge: str, addresses: list[str]) -> bool:
        """Whether datagrams arriving on BRIDGE can be answered through this socket.

        >>> UdpSocket("0.0.0.0", None, 9, "dnsmasq").covers("br0", ["10.0.3.1"])
        True
        """
        if self.device is not None and self.device != bridge:
            return False
        return self.address == "0.0.0.0" or self.address in addresses

    def describe(self) -> str:
        where = f"{self.address}%{self.device}" if self.device else f"{self.address} (all interfaces)"
        return f"{self.process}[{self.pid}] on {where}:{self.port}"
