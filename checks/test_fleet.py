"""The event's own containers, as they are defined on the host.

``member`` is one container (its effective config as liblxc loads it, its root
filesystem), ``fleet_view`` all of them; ``checks/fleet.yaml`` says why each
check matters. Nothing here starts or changes a container.
"""

import pytest

from lxc_compliance.readers.cgroup_dialect import limit_lines
from lxc_compliance.readers.lxd import size_in_bytes


def _where(member, observed, **values):
    observed.values = {"name": member.name, "config": str(member.config_path), "lxcpath": str(member.lxc.path),
                       "owner": member.owner, "rootfs": str(member.rootfs), **values}


def test_config_loads(check, member, observed):
    legacy = member.legacy
    _where(member, observed, renames=", ".join(f"{e.key} -> {e.current_key or '(removed)'}" for e in legacy))
    observed.expected = "the config loads in LXC (no pre-3.0 keys)"
    observed.actual = member.load_error or ("; ".join(e.where() for e in legacy) or "loads")
    observed.evidence = "\n".join(e.where() for e in legacy)
    assert not legacy, f"{member.label}: LXC no longer reads " + ", ".join(
        f"{e.key} (line {e.line}; now {e.current_key or 'removed'})" for e in legacy)
    assert member.load_error is None, f"{member.label}: LXC does not load its config: {member.load_error}"


def test_rootfs(check, loaded, observed):
    _where(loaded, observed)
    observed.expected = "the root filesystem exists"
    observed.actual = f"{loaded.rootfs} " + ("is there" if loaded.guest.present else "is missing")
    assert loaded.guest.present, f"{loaded.label}: {loaded.rootfs} is missing"


def test_backing_store(check, loaded, host, observed):
    store = loaded.backing_store(host)
    problem, found = store.problem(host)
    _where(loaded, observed, kind=store.kind, source=store.source, problem=problem or "")
    observed.expected = f"{store.kind} storage this host can mount"
    observed.actual = f"{store.kind}: {found}"
    observed.evidence = f"lxc.rootfs.path = {loaded.rootfs_value or '(unset: ' + loaded.default_rootfs + ')'}"
    assert problem is None, f"{loaded.label}: its {store.kind} storage cannot be mounted here: {problem}"


def _limit(loaded, fleet_limits, cgroup_dialect, observed, which: str):
    """The memory or memory+swap limit, in the dialect the host applies."""
    wanted = fleet_limits.memory if which == "memory" else fleet_limits.memsw
    found = loaded.applied_limit(which, cgroup_dialect)
    line = limit_lines(cgroup_dialect.applied, fleet_limits.memory, fleet_limits.memsw).get(which)
    _where(loaded, observed, expected=fleet_limits.text(wanted),
           line=line or f"{cgroup_dialect.applied}.memory.* (with the memory limit)")
    observed.expected = f"{found.name} {fleet_limits.text(wanted)}" + (f" ({line})" if line else "")
    observed.actual = found.describe()
    observed.evidence = found.evidence()
    problem = found.problem(wanted, loaded.label)
    assert problem is None, problem


def test_memory_limit(check, loaded, fleet_limits, cgroup_dialect, observed):
    if fleet_limits.memory is None:
        pytest.skip("the profile sets no memory limit (containers.memory_limit)")
    _limit(loaded, fleet_limits, cgroup_dialect, observed, "memory")


def test_memsw_limit(check, loaded, fleet_limits, cgroup_dialect, observed):
    _limit(loaded, fleet_limits, cgroup_dialect, observed, "memsw")


def test_network(check, loaded, fleet_network, observed):
    kind, link = loaded.config.get("lxc.net.0.type", ""), loaded.config.get("lxc.net.0.link", "")
    _where(loaded, observed, bridge=fleet_network.bridge)
    observed.expected = f"lxc.net.0: veth on {fleet_network.bridge}"
    observed.actual = f"lxc.net.0: {kind or 'no type'} on {link or 'no link'}"
    assert kind == "veth" and link == fleet_network.bridge, f"{loaded.label} is not a veth on {fleet_network.bridge}"


def test_mac(check, loaded, fleet_view, mac_prefix, host_macs, observed):
    mac = loaded.hwaddr
    sharing = fleet_view.sharing(loaded, lambda m: m.hwaddr)
    # Any other container defined on the host (the suite's samples included), in any lxcpath.
    sharing += sorted({name for name in host_macs.get(mac, []) if name != loaded.name} - set(sharing))
    _where(loaded, observed, suggestion=f"{mac_prefix}:xx:xx:xx:xx"[:17])
    observed.expected = f"lxc.net.0.hwaddr set: unicast, starting {mac_prefix}, no other container's"
    observed.actual = (mac or "not set (LXC makes a new one at every start)") + (
        f", also {', '.join(sharing)}'s" if sharing else "")
    assert mac, f"{loaded.label} has no lxc.net.0.hwaddr: its MAC, and so its DHCP lease, changes at every start"
    problem = loaded.mac_problem(mac_prefix)
    assert problem is None, f"{loaded.label}: {problem}"
    assert not sharing, f"{loaded.label}'s MAC {mac} is also the MAC of {', '.join(sharing)}"


def test_autostart(check, loaded, observed):
    value = loaded.config.get("lxc.start.auto", "")
    _where(loaded, observed)
    observed.expected = "lxc.start.auto = 1"
    observed.actual = f"lxc.start.auto = {value or '0 (not set)'}"
    assert value == "1", f"{loaded.label} is not started at boot (lxc.start.auto = {value or 'unset'})"


def test_idmap(check, loaded, subordinate_ids, observed):
    outside = loaded.idmap_outside(subordinate_ids)
    first = outside[0] if outside else ("u", 0, 100000, 65536)
    _where(loaded, observed, start=first[2], end=first[2] + first[3] - 1)
    observed.expected = f"every lxc.idmap line inside {loaded.owner}'s /etc/subuid and /etc/subgid ranges"
    observed.actual = "; ".join(" ".join(map(str, m)) for m in loaded.idmaps) or "no id map (privileged)"
    observed.evidence = "\n".join(f"not granted: {' '.join(map(str, m))}" for m in outside)
    if not loaded.idmaps:
        pytest.skip(f"{loaded.label} has no id map: it runs privileged (see security.unprivileged)")
    assert not outside, f"{loaded.label} maps ids {loaded.owner} was not given: " + ", ".join(
        f"{kind} {host}-{host + count - 1}" for kind, _, host, count in outside)


def test_address(check, guest, member, fleet_view, fleet_network, observed):
    address = member.address
    pool = fleet_network.pool
    ranges = ", ".join(f"{r.first}-{r.last}" for r in pool.ranges) if pool and pool.ranges else "the DHCP range"
    sharing = fleet_view.sharing(member, lambda m: m.address.ip if m.address else None)
    gold = fleet_view.gold_address
    _where(member, observed, subnet=fleet_network.subnet or "the subnet", dhcp_range=ranges, source=member.address_source)
    observed.expected = f"a static address of its own in {fleet_network.subnet or 'the subnet'} outside {ranges}, or DHCP"
    observed.actual = (f"{address} from {member.address_source}" if address else member.address_source) + (
        f"; also {', '.join(sharing)}'s" if sharing else "")
    if address is None:
        assert member.uses_dhcp, f"{member.label} has no address: {member.address_source}"
        return
    assert fleet_network.subnet is None or address.ip in fleet_network.subnet, (
        f"{member.label}'s address {address.ip} is outside {fleet_network.subnet}")
    assert not fleet_network.in_range(address.ip), (
        f"{member.label}'s static address {address.ip} is inside the DHCP range {ranges}: dnsmasq may lease it")
    assert gold is None or address.ip != gold.ip, (
        f"{member.label} still has the gold's address {gold.ip}: the copy's address was never set")
    assert not sharing, f"{member.label}'s address {address.ip} is also that of {', '.join(sharing)}"


def test_hostname(check, guest, member, fleet_view, observed):
    hostname = guest.hostname
    sharing = fleet_view.sharing(member, lambda m: m.guest.hostname.split(".")[0] if m.guest.present else None)
    _where(member, observed)
    observed.expected = f"/etc/hostname {member.name} (or {member.name}.DOMAIN), no other container's"
    observed.actual = (hostname or "empty") + (f"; also {', '.join(sharing)}'s" if sharing else "")
    assert hostname.split(".")[0] == member.name, f"{member.label}'s hostname is {hostname or 'empty'}, not {member.name}"
    assert not sharing, f"{member.label}'s hostname {hostname} is also that of {', '.join(sharing)}"


def test_machine_id(check, guest, member, fleet_view, observed):
    sharing = fleet_view.sharing(member, lambda m: m.guest.machine_id if m.guest.present else None)
    _where(member, observed)
    observed.expected = "an empty /etc/machine-id, or one no other container has"
    observed.actual = (guest.machine_id or "empty (made at first boot)") + (
        f"; also {', '.join(sharing)}'s" if sharing else "")
    assert not sharing, f"{member.label} shares its machine-id with {', '.join(sharing)}"


def test_ssh_host_keys(check, guest, member, fleet_view, observed):
    sharing = fleet_view.sharing_host_keys(member)
    _where(member, observed)
    observed.expected = "host keys no other container (nor the gold) has"
    observed.actual = ", ".join(f"{path} {key}" for path, key in guest.ssh_host_keys.items()) or "no host keys"
    assert not sharing, f"{member.label} presents the same SSH host keys as {', '.join(sharing)}"


def test_dhcp_identity(check, guest, member, fleet_view, observed):
    identity = guest.dhcp_client_identity
    sharing = fleet_view.sharing(member, lambda m: m.guest.dhcp_client_identity.split(" (")[0] or None
                                 if m.guest.present else None)
    _where(member, observed, identity=identity or "the fixed identity")
    observed.expected = "a DHCP client identity derived per container, or one no other container sends"
    observed.actual = (identity or "derived per container (machine-id or MAC)") + (
        f"; also sent by {', '.join(sharing)}" if sharing else "")
    assert not sharing, f"{member.label} sends the same DHCP client identity as {', '.join(sharing)}: {identity}"


def test_dhcp_lease(check, guest, member, observed):
    leases = guest.dhcp_leases
    _where(member, observed)
    observed.expected = "no dhclient lease in the copy"
    observed.actual = ", ".join(leases) or "none"
    assert not leases, f"{member.label} carries DHCP leases ({', '.join(leases)}): it asks for an address it was never given"


def test_guest_fixes(check, guest, member, observed):
    required, pin = guest.pam_loginuid_required, guest.no_dbus_pin
    _where(member, observed)
    observed.expected = "pam_loginuid optional for sshd and cron; dbus pinned to -1"
    observed.actual = ("; ".join(required) or "pam_loginuid optional") + "; no-dbus pin " + ("present" if pin else "missing")
    assert not required, f"{member.label}: pam_loginuid is still required: {'; '.join(required)}"
    assert pin, f"{member.label}: /etc/apt/preferences.d/no-dbus.pref is missing"


def test_drift(check, loaded, fleet_view, profile, observed):
    differs = fleet_view.drifts.get(loaded.label, [])
    _where(loaded, observed)
    observed.expected = f"set up like most of the {len(fleet_view.members)} containers"
    observed.actual = "; ".join(map(str, differs)) or "as the majority"
    if not profile.setting("fleet.uniform"):
        observed.warn_only = "the profile does not ask for a uniform fleet (fleet: {uniform: true})"
    assert not differs, f"{loaded.label} differs from the fleet: " + "; ".join(map(str, differs))


def test_usernet_quota(check, fleet_members, fleet_network, usernet_grants, observed):
    needed = {}
    for member in fleet_members:
        if member.owner != "root":
            needed[member.owner] = needed.get(member.owner, 0) + 1
    short = {owner: (count, usernet_grants(owner)) for owner, count in needed.items() if usernet_grants(owner) < count}
    owner = next(iter(short), next(iter(needed), "OWNER"))
    observed.values = {"owner": owner, "bridge": fleet_network.bridge, "needed": needed.get(owner, 0)}
    observed.expected = f"each owner's veth quota on {fleet_network.bridge} covers their containers"
    observed.actual = "; ".join(f"{o}: {n} containers, quota {usernet_grants(o)}" for o, n in needed.items()) or (
        "root's containers only (no quota applies)")
    assert not short, "; ".join(f"{o} has {n} containers on {fleet_network.bridge} but may attach {q}"
                                for o, (n, q) in short.items())


def test_dhcp_pool(check, fleet_members, fleet_network, observed):
    dhcp = [m.label for m in fleet_members if m.uses_dhcp]
    size = sum(r.size for r in fleet_network.pool.ranges) if fleet_network.pool else 0
    observed.values = {"bridge": fleet_network.bridge, "needed": len(dhcp)}
    observed.expected = f"a DHCP pool of at least {len(dhcp)} addresses for the DHCP containers"
    observed.actual = f"{size} addresses for {len(dhcp)} DHCP containers"
    assert size >= len(dhcp), f"{len(dhcp)} containers ask DHCP for an address; the pool has {size}"


def test_host_capacity(check, fleet_members, profile, observed):
    observed.values = {"count": len(fleet_members)}
    observed.expected = f"at most host.containers = {profile.containers} containers"
    observed.actual = f"{len(fleet_members)} containers defined"
    assert len(fleet_members) <= profile.containers, (
        f"{len(fleet_members)} containers are defined; the host is tuned for {profile.containers} (host.containers)")


def test_start_capacity(check, fleet_capacity, observed):
    capacity, count = fleet_capacity
    short = capacity.shortfalls
    observed.expected = f"room for the fleet's {count} stopped containers"
    observed.actual = "; ".join(short) or "enough inotify instances, PIDs and memory"
    observed.evidence = capacity.describe()
    observed.values = {"fix": "; ".join(short) or "nothing to fix"}
    assert not short, f"the host cannot start the fleet's {count} stopped containers: " + "; ".join(short)


def test_started(check, member, started, observed):
    phases = started.phases.as_dict()
    observed.values = {"name": member.name, "owner": member.owner}
    observed.expected = "RUNNING, an address, sshd and a login"
    observed.actual = (f"login after {phases['login']} s at {started.address}" if phases["login"] is not None
                       else f"not up: {started.error}")
    observed.metrics = {f"{name}_s": value for name, value in phases.items()}
    observed.evidence = "\n".join(started.lxc_errors)
    assert started.phases.login is not None, f"{member.label}: {started.error}"


def test_start_time(check, fleet_started, profile, observed):
    budget = float(profile.setting("fleet.start_budget_s"))
    count = len(fleet_started.started)
    observed.expected = f"all {count} started containers up (a login each) within {budget:g} s"
    observed.actual = (f"all up after {fleet_started.all_up_s} s" if fleet_started.all_up_s is not None
                       else f"{sum(s.phases.login is not None for s in fleet_started.started.values())} of {count} came up")
    observed.metrics = {"all_up_s": fleet_started.all_up_s, "started": count,
                        "already_running": len(fleet_started.already_running)}
    if not count:
        pytest.skip("no container of the fleet was stopped: nothing to start")
    down = [label for label, started in fleet_started.started.items() if started.phases.login is None]
    if down:
        pytest.skip(f"not checked: fleet.started.{down[0]} failed: {len(down)} of {count} did not come up")
    assert fleet_started.all_up_s <= budget, f"the fleet took {fleet_started.all_up_s} s to come up; the budget is {budget:g} s"


def test_fleet_leases_released(check, fleet_put_back, observed):
    started = list(fleet_put_back.started.values())
    still = [s.name for s in started if s.state not in ("STOPPED", "ABSENT")]
    observed.expected = f"the {len(started)} containers the run started stopped, their leases given back"
    observed.actual = ("; ".join(filter(None, [f"still running: {', '.join(still)}" if still else "",
                                               "; ".join(fleet_put_back.unreleased)])) or "all stopped, leases given back")
    observed.evidence = "\n".join(fleet_put_back.unreleased)
    assert not still, f"still running after the run stopped them: {', '.join(still)}"
    assert not fleet_put_back.unreleased, "leases not given back: " + "; ".join(fleet_put_back.unreleased)


# --- LXD instances ----------------------------------------------------------------------


def test_lxd_memory_limit(check, instance, lxd_plan, observed):
    found = instance.memory_limit
    observed.values = {"instance": instance.label, "expected": lxd_plan.memory_limit}
    observed.expected = f"limits.memory = {lxd_plan.memory_limit}"
    observed.actual = f"limits.memory = {found or '(unset: the host memory)'}"
    if not lxd_plan.memory_limit:
        pytest.skip("the profile sets no memory limit (lxd.memory_limit, fleet.memory_limit, containers.memory_limit)")
    assert found, f"{instance.label} has no limits.memory: it may use all of the host's memory"
    assert size_in_bytes(found) == size_in_bytes(lxd_plan.memory_limit), (
        f"{instance.label}'s limits.memory is {found}; the event plans {lxd_plan.memory_limit}")


def test_lxd_mac(check, instance, lxd_macs, host_macs, observed):
    macs = instance.hwaddrs
    sharing = {nic: sorted(set(lxd_macs.get(mac, [])) - {instance.label}) + sorted(host_macs.get(mac, []))
               for nic, mac in macs.items() if mac}
    sharing = {nic: others for nic, others in sharing.items() if others}
    observed.values = {"instance": instance.label, "nic": next(iter(sharing), "eth0")}
    observed.expected = "each NIC a MAC no other instance or LXC container has"
    observed.actual = "; ".join(f"{nic} {mac or '(none yet)'}" + (f", also {', '.join(sharing[nic])}'s" if nic in sharing else "")
                                for nic, mac in macs.items()) or "no NIC"
    assert not sharing, "; ".join(f"{instance.label}'s {nic} MAC {macs[nic]} is also {', '.join(others)}'s"
                                  for nic, others in sharing.items())


def test_lxd_address(check, instance, lxd, observed):
    mine = instance.addresses
    sharing = {address: [other.label for other in lxd.instances if other is not instance and address in other.addresses]
               for address in mine}
    sharing = {address: others for address, others in sharing.items() if others}
    observed.values = {"instance": instance.label}
    observed.expected = "IPv4 addresses no other instance has"
    observed.actual = ", ".join(mine) or f"none ({instance.status})"
    assert not sharing, "; ".join(f"{instance.label}'s {address} is also {', '.join(others)}'s" for address, others in sharing.items())


def test_lxd_autostart(check, instance, observed):
    observed.values = {"instance": instance.label}
    observed.expected = "boot.autostart = true"
    observed.actual = f"boot.autostart = {instance.config.get('boot.autostart', '(unset)')}"
    assert instance.flag["boot.autostart"], f"{instance.label} does not start at boot (boot.autostart is not true)"


def test_lxd_running(check, instance, observed):
    observed.values = {"instance": instance.label}
    observed.expected = "Running"
    observed.actual = instance.status
    assert instance.status == "Running", f"{instance.label} is {instance.status}"
