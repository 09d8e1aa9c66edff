"""The container network: bridge, dnsmasq, a real DHCP exchange.

``network`` is the bridge under test (the profile's, or the lab network this
run built); ``dhcp_exchange`` is one real DHCP client run from a namespace on
it. ``checks/network.yaml`` says why each check matters.
"""

import ipaddress
import time

import pytest

from lxc_compliance.readers.dnsmasq import lease_seconds


def test_bridge_exists(check, bridge, observed):
    observed.actual = bridge.describe()
    observed.values = {"bridge": bridge.name}
    assert bridge.exists, f"there is no link {bridge.name}"
    assert bridge.kind == "bridge", f"{bridge.name} is a {bridge.kind or 'physical'} link, not a bridge"


def test_bridge_up(check, existing_bridge, observed):
    observed.actual = existing_bridge.describe()
    observed.values = {"bridge": existing_bridge.name}
    assert existing_bridge.up, f"{existing_bridge.name} is down"


def test_bridge_address(check, existing_bridge, network, observed):
    addresses = existing_bridge.networks
    wanted = network.subnet
    observed.expected = f"an IPv4 address in {wanted}" if wanted else "an IPv4 address"
    observed.actual = ", ".join(map(str, addresses)) or "no IPv4 address"
    observed.values = {"bridge": existing_bridge.name, "wanted": f"{next(wanted.hosts())}/{wanted.prefixlen}" if wanted else "ADDRESS/24"}
    assert addresses, f"{existing_bridge.name} has no IPv4 address"
    if wanted is not None:
        assert any(a.ip in wanted for a in addresses), f"no address of {existing_bridge.name} is in {wanted}"


def test_bridge_setting(check, existing_bridge, profile, observed):
    wanted = profile.setting(check.setting)
    found = {"network.forward_delay": existing_bridge.forward_delay, "network.stp": existing_bridge.stp,
             "network.mtu": existing_bridge.mtu}[check.setting]
    name = check.setting.split(".")[-1]
    observed.expected = f"{name} {wanted}"
    observed.actual = f"{name} {found}"
    observed.values = {"bridge": existing_bridge.name, "wanted": wanted, "wanted_number": int(bool(wanted))}
    assert found == wanted, f"{existing_bridge.name} has {name} {found}, the profile wants {wanted}"


def test_bridge_uplink(check, existing_bridge, profile, observed):
    uplink = profile.setting("network.uplink")
    observed.expected = f"{uplink} is a port of {existing_bridge.name}"
    observed.actual = "ports: " + (", ".join(existing_bridge.ports) or "none")
    observed.values = {"bridge": existing_bridge.name, "uplink": uplink}
    assert uplink in existing_bridge.ports, f"{uplink} is not a port of {existing_bridge.name}"


def test_dnsmasq_serves_bridge(check, network, serving, host_network, observed):
    everything = host_network.dnsmasq_processes()
    observed.expected = f"a dnsmasq with interface={network.bridge} (or listening on its address)"
    observed.actual = "; ".join(f"pid {p.pid}: {' '.join(p.cmdline)}" for p in serving) or "none"
    observed.evidence = "\n".join(f"pid {p.pid}: {' '.join(p.cmdline)}" for p in everything) or "no dnsmasq process runs"
    observed.values = {"bridge": network.bridge}
    assert serving, f"no dnsmasq serves {network.bridge}" + ("" if everything else " (no dnsmasq runs at all)")


def test_dhcp_range(check, network, served, subnet, observed):
    ranges = [r for p in served for r in p.config.ranges]
    minimum = network.containers + network.margin
    fitting = [r for r in ranges if subnet is not None and r.inside(subnet)]
    observed.expected = f"a dhcp-range inside {subnet} with at least {minimum} addresses"
    observed.actual = "; ".join(f"{r.first}-{r.last} ({r.size} addresses, lease {r.lease_time or 'default 1h'}) from {r.source}" for r in ranges) or "no dhcp-range"
    suggestion = f"{next(subnet.hosts()) + 9},{next(subnet.hosts()) + 9 + minimum - 1},12h" if subnet else "FIRST,LAST,12h"
    observed.values = {"subnet": subnet, "minimum": minimum, "containers": network.containers, "margin": network.margin, "suggestion": suggestion}
    assert ranges, "the dnsmasq serving the bridge has no dhcp-range"
    assert fitting, f"no dhcp-range lies inside {subnet}: " + ", ".join(f"{r.first}-{r.last}" for r in ranges)
    assert max(r.size for r in fitting) >= minimum, f"the range has {max(r.size for r in fitting)} addresses; {minimum} needed"


def test_dhcp_lease_time(check, served, profile, observed):
    wanted = profile.setting("network.dhcp.min_lease_time")
    ranges = [r for p in served for r in p.config.ranges]
    observed.expected = f"lease time >= {wanted}"
    observed.actual = ", ".join(r.lease for r in ranges) or "no dhcp-range"
    observed.values = {"wanted": wanted}
    assert ranges, "no dhcp-range serves the bridge"
    shortest = min(ranges, key=lambda r: r.lease_s)
    assert shortest.lease_s >= (lease_seconds(wanted) or float("inf")), f"leases last {shortest.lease}; at least {wanted} wanted"


def test_dhcp_port_exclusive(check, existing_bridge, serving, host_network, observed):
    port = host_network.dhcp_port(existing_bridge, serving)
    observed.expected = f"only the dnsmasq configured for {existing_bridge.name} on UDP 67 there"
    observed.actual = "; ".join(s.describe() for s in port.answering) or "nobody"
    observed.evidence = "\n".join(s.describe() for s in port.sockets) or "no UDP socket on port 67"
    assert len(port.holders) <= 1, (
        f"{len(port.holders)} processes answer DHCP on {existing_bridge.name}: "
        + "; ".join(s.describe() for s in port.answering)
    )
    assert not port.strangers, "; ".join(
        f"{s.describe()} is not configured for {existing_bridge.name} but holds its DHCP port" for s in port.strangers
    )


def test_checksum_fill(check, existing_bridge, host_network, observed):
    rules = host_network.checksum_fill_rules(existing_bridge.name)
    observed.expected = f"a mangle CHECKSUM --checksum-fill rule for UDP to port 68 leaving {existing_bridge.name}"
    observed.actual = "; ".join(rules) or "no CHECKSUM rule"
    observed.values = {"bridge": existing_bridge.name}
    assert rules, f"DHCP replies leave {existing_bridge.name} without a checksum fill rule; dhclient in guests may drop them"


def test_dhcp_exchange(check, network, working_bridge, dhcp_exchange, serving, subnet, observed):
    lease = dhcp_exchange.lease
    ranges = [r for p in serving for r in p.config.ranges]
    server_addresses = {str(a.ip) for a in working_bridge.networks}
    observed.expected = f"an offer and an ack from {', '.join(sorted(server_addresses))} within the timeout, for an address in the range"
    observed.actual = (f"{lease['ip']}/{lease['prefixlen']} from {lease['server_id']} in {dhcp_exchange.result['time_to_lease_s']} s, "
                       f"lease {lease['lease_time']} s") if lease else (dhcp_exchange.error or "no lease")
    observed.evidence = f"namespace {dhcp_exchange.namespace}: {dhcp_exchange.result}"
    observed.values = {"bridge": network.bridge}
    if lease:
        observed.metrics = {"time_to_offer_s": dhcp_exchange.result["time_to_offer_s"],
                            "time_to_lease_s": dhcp_exchange.result["time_to_lease_s"]}
    assert lease, f"no lease: {dhcp_exchange.error}"
    assert lease["server_id"] in server_addresses, f"the lease came from {lease['server_id']}, not from the bridge's dnsmasq"
    assert not ranges or any(lease["ip"] in r for r in ranges), f"{lease['ip']} is outside every dhcp-range"
    assert subnet is None or ipaddress.ip_address(lease["ip"]) in subnet, f"{lease['ip']} is outside {subnet}"


def test_dhcp_single_server(check, dhcp_exchange, working_bridge, observed):
    if not dhcp_exchange.servers:
        pytest.skip("no DHCP server answered at all: network.dhcp_exchange says why")
    servers = dhcp_exchange.servers
    own = {str(a.ip) for a in working_bridge.networks}
    observed.expected = "offers from one server only"
    observed.actual = "; ".join(f"{server} offered {address}" for server, address in servers.items())
    observed.values = {"others": ", ".join(s for s in servers if s not in own) or "none"}
    assert len(servers) == 1, f"{len(servers)} DHCP servers answer on the bridge: {', '.join(servers)}"


def test_dhcp_pool_headroom(check, network, served, subnet, host_network, observed):
    ranges = [r for p in served for r in p.config.ranges if subnet is None or r.inside(subnet)]
    if not ranges:
        pytest.skip("not checked: network.dhcp_range failed: no dhcp-range inside the subnet")
    leasefile = served[0].config.leasefile
    in_use = [lease for lease in host_network.active_leases(leasefile, time.time()) if any(lease[0] in r for r in ranges)]
    size = max(r.size for r in ranges)
    if size < network.containers:
        pytest.skip("not checked: network.dhcp_range failed: the range itself is smaller than the fleet")
    observed.expected = f"{network.containers} free addresses"
    observed.actual = f"{len(in_use)} of {size} addresses leased, {size - len(in_use)} free"
    observed.evidence = "\n".join(f"{ip} {name}" for ip, name in in_use) or f"no active lease in {leasefile}"
    observed.values = {"leasefile": leasefile}
    assert size - len(in_use) >= network.containers, f"only {size - len(in_use)} free addresses for {network.containers} containers"
