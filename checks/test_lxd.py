"""The LXD server: its daemon, warnings, storage, network and default profile.

``lxd`` is the server read once over its socket with GET requests only
(readers.lxd); ``lxd_plan`` is what the profile expects of it.
``checks/lxd.yaml`` says why each check matters.
"""

import ipaddress

from lxc_compliance.readers import host as host_facts
from lxc_compliance.readers.lxd import size_in_bytes

# Warnings that leave instances without a network, a disk or a start; the rest are warned.
BREAKING_WARNINGS = ("unavailable", "autostart", "Failed to start")


def test_daemon(check, lxd_read, lxd_plan, observed):
    observed.expected = "an LXD or Incus daemon answering on its socket"
    reached = not isinstance(lxd_read, str)
    observed.actual = (f"{lxd_read.server_name} {lxd_read.version} on {lxd_read.socket} "
                       f"(driver {lxd_read.environment.get('driver', '?')}, firewall {lxd_read.firewall})"
                       if reached else lxd_read)
    assert reached, lxd_read


def test_warnings(check, lxd, observed):
    open_warnings = lxd.open_warnings()
    lines = [f"[{w.get('severity', '?')}] {w.get('type', '')}: {w.get('last_message', '')}"
             + (f" ({w['entity_url']})" if w.get("entity_url") else "") + f" x{w.get('count', 1)}"
             for w in open_warnings]
    server = lxd.words["server"]
    breaking = [line for line in lines if any(word.lower() in line.lower() for word in BREAKING_WARNINGS)]
    observed.expected = "no open warning that leaves instances without a network, a disk or a start"
    observed.actual = f"{len(open_warnings)} open warnings" + (f", {len(breaking)} breaking instances" if breaking else "")
    observed.evidence = "\n".join(lxd.warning_lines()) or "no warning of any status"
    if not breaking:
        observed.warn_only = f"{server}'s warnings say what it runs without (each line of the evidence)"
        assert not lines, f"{len(lines)} open {server} warnings: " + "; ".join(lines[:3])
    assert not breaking, "; ".join(breaking)


def test_storage_pool(check, lxd, lxd_plan, observed):
    root = lxd.root_disk()
    pool = (root or {}).get("pool", "")
    free = lxd.pool_free(pool) if pool else None
    per_instance = size_in_bytes(lxd_plan.instance_disk) or 0
    needed = per_instance * lxd_plan.containers
    observed.expected = f"the default profile's root pool with {needed / 1e9:.1f} GB free ({lxd_plan.containers} x {lxd_plan.instance_disk})"
    observed.actual = (f"pool {pool} ({(lxd.pools.get(pool) or {}).get('driver', 'missing')}), "
                       f"{free / 1e9:.1f} GB free" if free is not None else f"pool {pool or '(none in the default profile)'}")
    observed.values = {"needed": f"{needed / 1e9:.1f} GB"}
    assert pool, "the default profile has no root disk"
    assert pool in lxd.pools, f"the default profile's root disk names pool {pool}, which does not exist"
    assert free is None or free >= needed, f"pool {pool} has {free / 1e9:.1f} GB free; {needed / 1e9:.1f} GB planned"


def test_network(check, lxd, lxd_plan, observed):
    network = lxd.network(lxd_plan.network)
    observed.values = {"network": lxd_plan.network}
    observed.expected = f"{lxd_plan.network}: a bridge {lxd.words['server']} manages"
    observed.actual = (f"{lxd_plan.network}: {network.get('type')}, " + ("managed" if network.get("managed") else "not managed")
                       + f", {network.get('status', '')}") if network else f"no network {lxd_plan.network}"
    assert network, f"{lxd.words['server']} has no network {lxd_plan.network}"
    assert network.get("managed"), f"{lxd_plan.network} is not managed by {lxd.words['server']}: it runs no DHCP server for instances"
    assert network.get("type") == "bridge", f"{lxd_plan.network} is a {network.get('type')}, not a bridge"
    assert network.get("status", "Created") == "Created", f"{lxd_plan.network} is {network.get('status')}"


def test_network_ipv4(check, lxd, lxd_plan, lxd_network, observed):
    value = (lxd_network.get("config") or {}).get("ipv4.address", "")
    observed.values = {"network": lxd_plan.network}
    observed.expected = "ipv4.address set to an address with a prefix"
    observed.actual = f"ipv4.address = {value or '(unset)'}"
    assert lxd.subnet(lxd_plan.network) is not None, (f"{lxd_plan.network} has ipv4.address = {value or '(unset)'}: "
                                                       "its instances get no IPv4 address")


def test_dhcp_range(check, lxd, lxd_plan, lxd_network, observed):
    size = lxd.dhcp_pool_size(lxd_plan.network)
    config = lxd_network.get("config") or {}
    observed.values = {"network": lxd_plan.network, "needed": lxd_plan.containers}
    observed.expected = f"at least {lxd_plan.containers} addresses to lease (host.containers)"
    observed.actual = (f"{size} addresses (" + (f"ipv4.dhcp.ranges = {config['ipv4.dhcp.ranges']}"
                       if config.get("ipv4.dhcp.ranges") else "the whole subnet") + ")") if size is not None else "no DHCP"
    assert size is not None, f"{lxd_plan.network} does not serve DHCP (ipv4.dhcp = false)"
    assert size >= lxd_plan.containers, f"{lxd_plan.network} leases {size} addresses; {lxd_plan.containers} instances are planned"


def test_nat(check, lxd_plan, lxd_network, observed):
    found = (lxd_network.get("config") or {}).get("ipv4.nat", "false") == "true"
    observed.values = {"network": lxd_plan.network, "expected": str(lxd_plan.nat).lower()}
    observed.expected = f"ipv4.nat = {str(lxd_plan.nat).lower()}"
    observed.actual = f"ipv4.nat = {str(found).lower()}"
    assert found == lxd_plan.nat, f"{lxd_plan.network} has ipv4.nat = {str(found).lower()}; the profile says {str(lxd_plan.nat).lower()}"


def test_subnet_overlap(check, lxd, lxd_plan, lxd_network, host_addresses, observed):
    subnet = lxd.subnet(lxd_plan.network).network
    others = [(name, network) for name, network in host_addresses if name != lxd_plan.network and network.overlaps(subnet)]
    observed.values = {"network": lxd_plan.network, "others": ", ".join(name for name, _ in others) or "other links"}
    observed.expected = f"no other link on the host with an address in {subnet}"
    observed.actual = "; ".join(f"{name}: {network}" for name, network in others) or f"{subnet} is {lxd_plan.network}'s alone"
    assert not others, f"{subnet} overlaps " + ", ".join(f"{name} ({network})" for name, network in others)


def test_firewall(check, lxd, lxd_plan, lxd_network, host_firewall, observed):
    dropping = host_firewall.dropping(lxd_plan.network)
    observed.values = {"network": lxd_plan.network}
    observed.expected = f"no rule or policy of the host's firewall dropping DHCP or forwarding on {lxd_plan.network}"
    observed.actual = "; ".join(dropping) or f"nothing drops it ({lxd.words['server']}'s firewall driver: {lxd.firewall or '?'})"
    observed.evidence = "\n".join(dropping)
    assert not dropping, "; ".join(dropping)


def test_dhcp_exchange(check, lxd, lxd_plan, lxd_network, lxd_dhcp_exchange, observed):
    lease = lxd_dhcp_exchange.lease
    subnet = lxd.subnet(lxd_plan.network)
    observed.values = {"network": lxd_plan.network}
    observed.expected = f"a lease in {subnet.network} from {subnet.ip}"
    observed.actual = (f"{lease['ip']}/{lease['prefixlen']} from {lease['server_id']} in "
                       f"{lxd_dhcp_exchange.result['time_to_lease_s']} s") if lease else (lxd_dhcp_exchange.error or "no lease")
    observed.evidence = f"namespace {lxd_dhcp_exchange.namespace}: {lxd_dhcp_exchange.result}"
    assert lease, f"no lease on {lxd_plan.network}: {lxd_dhcp_exchange.error}"
    assert lease["server_id"] == str(subnet.ip), f"the lease came from {lease['server_id']}, not from {lxd.words['server']}'s dnsmasq ({subnet.ip})"
    assert ipaddress.ip_address(lease["ip"]) in subnet.network, f"{lease['ip']} is outside {subnet.network}"


def test_default_profile(check, lxd, lxd_plan, observed):
    root, nic = lxd.root_disk(), lxd.profile_nic()
    on = (nic or {}).get("network") or (nic or {}).get("parent", "")
    observed.values = {"network": lxd_plan.network}
    observed.expected = f"a root disk and a NIC on {lxd_plan.network}"
    observed.actual = (f"root disk on pool {root.get('pool')}" if root else "no root disk") + "; " + (
        f"NIC {nic.get('name', '?')} on {on}" if nic else "no NIC")
    assert root, "the default profile has no root disk: an instance launched without -s does not launch"
    assert nic, "the default profile has no NIC: instances have no network"
    assert on == lxd_plan.network, f"the default profile's NIC is on {on}, not {lxd_plan.network}"


def test_https_address(check, lxd, lxd_plan, observed):
    address, everywhere = lxd.https_address, lxd.https_everywhere
    observed.expected = "core.https_address unset or bound to one address" + (
        " (the profile allows every address)" if lxd_plan.https_everywhere else "")
    observed.actual = f"core.https_address = {address or '(unset: the unix socket only)'}"
    assert not everywhere or lxd_plan.https_everywhere, (
        f"core.https_address = {address}: the full-admin API listens on every address of the host")


def test_trust(check, lxd, observed):
    trust, tokens = lxd.trust, lxd.tokens
    expiry = trust["core.remote_token_expiry"]
    standing = lxd.tokens_that_never_expire
    observed.expected = ("where the API listens on the network: no client trusted by its CA alone, "
                         "no join token that never expires")
    observed.actual = (f"core.https_address = {lxd.https_address or '(unset: the unix socket only)'}; "
                       f"core.trust_ca_certificates = {trust['core.trust_ca_certificates'] or 'false'}; "
                       f"core.remote_token_expiry = {expiry or '(unset: tokens never expire)'}; "
                       f"{len(lxd.certificates)} trusted clients, {len(tokens)} join tokens not used yet")
    observed.evidence = "\n".join(
        [f"trusted: {c.get('name') or '?'} ({c.get('type', 'client')}, "
         f"{'restricted to ' + ', '.join(c.get('projects') or []) if c.get('restricted') else 'unrestricted'})"
         for c in lxd.certificates]
        + [f"join token {t.get('id', '')[:8]} for {(t.get('metadata') or {}).get('clientName') or '?'}, made "
           f"{t.get('created_at', '?')}, expires {(t.get('metadata') or {}).get('expiresAt') or 'never'}" for t in tokens])
    if not lxd.https_address:
        return  # only the unix socket, which the admin group guards (lxd.admin_group)
    assert trust["core.trust_ca_certificates"].lower() != "true", (
        "core.trust_ca_certificates = true: every certificate its CA signed is a full-admin client")
    assert not standing, f"{len(standing)} join tokens that never expire: each makes a full-admin client of whoever holds it"


def test_admin_group(check, lxd, lxd_plan, host, observed):
    group = lxd.words["admin_group"]
    members = host_facts.group_members(host, group)
    extra = [name for name in members if name not in lxd_plan.admins]
    observed.values = {"extra": ", ".join(extra) or "none"}
    observed.expected = f"{group}: {', '.join(lxd_plan.admins) or 'no member'} (lxd.admins)"
    observed.actual = f"{group}: {', '.join(members) or 'no member'}" if members is not None else f"no group {group}"
    observed.evidence = f"every member of {group} is root-equivalent on this host"
    assert not extra, f"{', '.join(extra)} in {group} (root-equivalent) but not named by the profile"
