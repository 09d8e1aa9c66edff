"""Sample containers, started from the gold image as the event starts them.

``sample`` is one clone (its phases, address, login), ``fleet`` all of them;
``checks/containers.yaml`` says why each check matters.
"""

import pytest

from lxc_compliance.readers.cgroup_dialect import systemd_on_layout


def _needs_running(sample):
    if sample.phases.running is None:
        pytest.skip(f"not checked: containers.running failed: {sample.name} is not running")


def test_capacity(check, capacity, sample_total, observed):
    short = capacity.shortfalls
    observed.expected = f"room for {sample_total} more containers"
    observed.actual = "; ".join(short) or "enough inotify instances, PIDs and memory"
    observed.evidence = capacity.describe()
    assert not short, f"the host cannot start {sample_total} samples: " + "; ".join(short)


def test_room(check, sample_room, observed):
    if isinstance(sample_room, str):
        pytest.skip(sample_room)
    observed.values, observed.actual = {"lxcpath": sample_room.room.path}, sample_room.describe()
    observed.expected = "room for every sample's copy of the gold"
    assert not sample_room.shortfalls, "not copying the samples: " + "; ".join(sample_room.shortfalls)


def test_cgroup_delegation(check, sample_owner, delegated, observed):
    missing = sample_owner.undelegated(delegated)
    observed.expected = f"a login session of {sample_owner.name} gets its own {', '.join(delegated)} cgroups"
    observed.actual = f"not delegated: {', '.join(missing)}" if missing else "all delegated"
    observed.evidence = "\n".join(f"{c or 'cgroup2'}: {p}" for c, p in sample_owner.session_cgroups.items())
    observed.values = {"controllers": ",".join(delegated)}
    assert not missing, (f"{sample_owner.name}'s login sessions get no cgroup of their own for {', '.join(missing)}: "
                         "lxc-start fails to set the memory limits, or systemd in the container exits at once")


def test_network_ready(check, network, network_readiness, observed):
    observed.expected = f"{network.bridge} up, served by dnsmasq, handing out leases"
    observed.actual = network_readiness.problem or "ready"
    observed.evidence = network_readiness.evidence
    observed.values = {"remedy": network_readiness.check or "the bridge"}
    assert network_readiness.problem is None, f"samples would get no address: {network_readiness.problem}"


def test_running(check, sample, sample_index, observed):
    observed.expected = "RUNNING, and still running after boot"
    observed.actual = sample.state if sample.phases.running is not None else f"not running: {sample.error}"
    observed.values = {"name": sample.name, "lxcpath": sample.lxc.path}
    observed.evidence = "\n".join(sample.lxc_errors)
    assert sample.phases.running is not None, sample.error or f"{sample.name} did not start"
    assert sample.stopped_after is None, sample.error


def test_unprivileged(check, sample, sample_index, sample_lxc, observed):
    _needs_running(sample)
    mapping = sample.uid_map
    observed.expected = f"init in a user namespace, root mapped to a subordinate uid of {sample_lxc.owner}"
    observed.actual = ", ".join(" ".join(map(str, line)) for line in mapping) or "no uid_map"
    observed.evidence = f"/proc/{sample.init_pid}/uid_map of {sample.name}'s init"
    assert mapping, f"{sample.name}'s init is not running"
    assert mapping != [(0, 0, 4294967295)], f"{sample.name} runs privileged: its root is the host's root"
    assert all(outside >= 65536 for _, outside, _ in mapping), f"{sample.name} maps ids onto the host's own users"


def test_memory_limit(check, sample, sample_index, wanted_limits, observed):
    _needs_running(sample)
    found = sample.limits.memory
    observed.expected = f"{found.key} = {wanted_limits.memory_text}"
    observed.actual = found.describe()
    observed.values = {"expected": wanted_limits.memory_setting}
    assert found.raw is not None, f"{sample.name} has no memory cgroup file"
    assert found.bytes == wanted_limits.memory, (f"{sample.name}'s memory limit is {found.raw}, "
                                                 f"the profile wants {wanted_limits.memory_text}")


def test_memsw_limit(check, sample, sample_index, wanted_limits, observed):
    if wanted_limits.memsw is None:
        pytest.skip("the profile sets no containers.memsw_limit")
    _needs_running(sample)
    found = sample.limits.memsw
    observed.expected = f"{found.key} = {wanted_limits.memsw_text}"
    observed.actual = found.describe()
    observed.values = {"expected": wanted_limits.memsw_setting}
    assert found.raw is not None, "the kernel does not account swap per cgroup (see host.swap_accounting)"
    assert found.bytes == wanted_limits.memsw, (f"{sample.name}'s memory+swap limit is {found.raw}, "
                                                f"the profile wants {wanted_limits.memsw_text}")


def test_memory_enforced(check, fleet, wanted_limits, observed):
    running = [s for s in fleet.samples if s.phases.running is not None]
    if not running:
        pytest.skip("not checked: containers.running failed: no sample is running")
    killed, evidence = running[0].allocate_past(wanted_limits.memory)
    observed.expected = f"a process allocating more than {wanted_limits.memory_text} is killed"
    observed.actual = "killed" if killed else "not killed"
    observed.evidence = evidence
    assert killed, f"a process in {running[0].name} allocated past {wanted_limits.memory_text} and was not killed"


def test_mac(check, sample, sample_index, defined_macs, mac_prefix, observed):
    others = [name for name in defined_macs.get(sample.mac.lower(), []) if name != sample.name]
    observed.expected = f"a unicast MAC starting {mac_prefix}, used by no other container on the host"
    observed.actual = sample.mac + (f", also set in {', '.join(others)}" if others else "")
    observed.values = {"config": str(sample.config_path)}
    problem = sample.mac_problem(mac_prefix)
    assert problem is None, problem
    assert not others, f"{sample.mac} is also the MAC of {', '.join(others)}"


def test_ipv4(check, sample, sample_index, fleet, address_plan, observed):
    _needs_running(sample)
    first, last = address_plan.range_for(sample_index)
    observed.expected = address_plan.describe(sample_index)
    sharing = fleet.sharing_address(sample)
    observed.actual = sample.address or f"no address: {sample.error}"
    observed.evidence = sample.inside
    observed.values = {"name": sample.name}
    assert sample.address, sample.error or f"{sample.name} got no IPv4 address"
    assert address_plan.allows(sample_index, sample.address), f"{sample.address} is outside {first}-{last}"
    assert not sharing, f"{sample.address} is also the address of {', '.join(sharing)}"


def test_machine_id(check, sample, sample_index, fleet, observed):
    if not sample.login:
        pytest.skip(f"not checked: containers.ssh_login failed: no login to {sample.name}")
    mine = sample.login["machine_id"]
    sharing = fleet.sharing_machine_id(sample)
    observed.expected = "a machine-id no other clone has"
    observed.actual = mine + (f", shared with {', '.join(sharing)}" if sharing else "")
    assert mine, f"{sample.name} has an empty /etc/machine-id"
    assert not sharing, f"{sample.name} shares its machine-id with {', '.join(sharing)}"


def test_gold_clean(check, gold_image, gold_rootfs, observed):
    observed.values = {"rootfs": str(gold_image.rootfs)}
    assert gold_image.lxc.exists(gold_image.name), f"there is no gold container {gold_image.name} in {gold_image.lxc.path}"
    machine_id, leases = gold_rootfs.machine_id, gold_rootfs.dhcp_leases
    observed.expected = "an empty /etc/machine-id and no dhclient lease in the gold image"
    observed.actual = f"machine-id {machine_id or '(empty)'}; leases: {', '.join(leases) or 'none'}"
    assert not machine_id, f"the gold image {gold_image.name} has machine-id {machine_id}: every clone inherits it"
    assert not leases, f"the gold image holds DHCP leases ({', '.join(leases)}): every clone asks for the same address"
    keys, regeneration = gold_rootfs.ssh_host_keys, gold_rootfs.host_key_regeneration
    observed.expected += "; SSH host keys absent, or made anew at each copy's first boot"
    observed.actual += f"; SSH host keys: {', '.join(keys) or 'none'}" + (
        f" (made anew at first boot by {regeneration})" if keys and regeneration else "")
    # Warned: the event can still run, but one student's root holds the key every other container presents.
    observed.warn_only = "a copy of this gold presents the gold's SSH host keys (fleet.ssh_host_keys finds the copies)"
    assert not keys or regeneration, (f"the gold image {gold_image.name} holds SSH host keys and nothing makes new ones "
                                      "at first boot: every plain copy presents the same keys")


def test_gold_systemd(check, gold_image, gold_rootfs, cgroups, observed):
    verdict, why = systemd_on_layout(gold_rootfs.systemd_version, cgroups.layout)
    observed.expected = "a systemd that supports this host's cgroup layout"
    observed.actual = why
    observed.evidence = cgroups.describe()
    if verdict == "tainted":
        observed.warn_only = "it boots here, tainted; the next systemd or a pure cgroup v1 host does not"
    assert verdict == "ok", f"the gold image {gold_image.name}: {why}"


def test_boot_time(check, sample, sample_index, boot_budget, observed):
    _needs_running(sample)
    phases = sample.phases.as_dict()
    total = phases["login"]
    observed.expected = f"login within {boot_budget:g} s of lxc-start"
    observed.actual = f"{total} s" if total is not None else f"no login: {sample.error}"
    observed.metrics = {f"{name}_s": value for name, value in phases.items()}
    slow_logins = sample.login.get("slow_attempts", [])
    if total is None or total > boot_budget:
        observed.evidence = sample.slowest_units()
    if slow_logins:
        observed.evidence = "\n".join([f"login attempts sshd did not answer in time: {'; '.join(slow_logins)}",
                                        observed.evidence or ""]).strip()
    assert total is not None, sample.error or "the boot did not finish"
    assert total <= boot_budget, f"{sample.name} took {total} s to a login; the budget is {boot_budget:g} s"


def test_ssh_login(check, sample, sample_index, fleet, observed):
    _needs_running(sample)
    observed.expected = f"login as {fleet.user}; hostname {sample.name}; PID 1 systemd"
    observed.actual = (f"{sample.login['method']} login; hostname {sample.login['hostname']}, PID 1 {sample.login['pid1']}"
                       if sample.login else f"no login: {sample.error}")
    observed.evidence = sample.banner if sample.login else "\n".join(
        filter(None, [sample.banner, sample.inside, "slowest units of the boot:", sample.slowest_units()]))
    assert sample.login, sample.error or "no login"
    assert sample.login["hostname"] == sample.name, f"hostname is {sample.login['hostname']}, not {sample.name}"
    assert sample.login["pid1"] == "systemd", f"PID 1 is {sample.login['pid1']}, not systemd"


def test_guest_fixes(check, sample, sample_index, observed):
    _needs_running(sample)
    guest = sample.guest
    required, pin = guest.pam_loginuid_required, guest.no_dbus_pin
    observed.expected = "pam_loginuid optional for sshd and cron; dbus pinned to -1"
    observed.actual = ("\n".join(guest.pam_loginuid_lines) or "no pam_loginuid line") + "; no-dbus pin " + (
        "present" if pin else "missing")
    assert not required, f"pam_loginuid is still required: {'; '.join(required)}"
    assert pin, "/etc/apt/preferences.d/no-dbus.pref is missing"


def test_leases_released(check, fleet_removed, address_plan, observed):
    fleet, free_now = fleet_removed
    before = fleet.pool_free_before
    observed.expected = (f"every sample's lease given back: {before} free addresses in the pool, as before the samples"
                         if not address_plan.static else "no lease taken (static addresses)")
    observed.actual = f"{free_now} free addresses" + (f"; not released: {'; '.join(fleet.unreleased)}"
                                                       if fleet.unreleased else "")
    observed.evidence = "\n".join(fleet.unreleased)
    observed.values = {"leasefiles": " ".join(fleet.leasefiles) or "the lease file"}
    assert not fleet.unreleased, "leases not given back: " + "; ".join(fleet.unreleased)
    assert before is None or free_now >= before, f"the pool had {before} free addresses before the samples, {free_now} after"
