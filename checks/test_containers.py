"""Sample containers, started from the gold image as the event starts them.

``sample`` is one clone (its phases, address, login), ``fleet`` all of them;
``checks/containers.yaml`` says why each check matters.
"""

import pytest

from fixtures import container_facts
from fixtures.host_files import format_size, parse_size


def test_capacity(check, profile, request, observed):
    from fixtures.container_facts import host_capacity
    from fixtures.plugin import sample_count

    count = sample_count(profile, request.config.getoption("samples"))
    limits = host_capacity(profile, count)
    short = [text for enough, text in limits if not enough]
    observed.expected = f"room for {count} more containers"
    observed.actual = "; ".join(short) or "enough inotify instances, PIDs and memory"
    observed.evidence = "\n".join(text for _, text in limits)
    assert not short, f"the host cannot start {count} samples: " + "; ".join(short)


def _needs_running(sample):
    if sample.phases.running is None:
        pytest.skip(f"{sample.name} is not running (see containers.running)")


def test_cgroup_delegation(check, profile, sample_lxc, host, observed):
    from fixtures.container_fixtures import delegated_controllers
    from fixtures.host_facts import LxcUser

    owner = LxcUser(host, sample_lxc.owner)
    wanted = delegated_controllers(profile)
    missing = owner.undelegated(wanted)
    observed.expected = f"a login session of {owner.name} gets its own {', '.join(wanted)} cgroups"
    observed.actual = f"not delegated: {', '.join(missing)}" if missing else "all delegated"
    observed.evidence = "\n".join(f"{c or 'cgroup2'}: {p}" for c, p in owner.session_cgroups.items())
    observed.values = {"controllers": ",".join(wanted)}
    assert not missing, (f"{owner.name}'s login sessions get no cgroup of their own for {', '.join(missing)}: "
                         "lxc-start fails to set the memory limits, or systemd in the container exits at once")


def test_running(check, sample, sample_index, observed):
    observed.expected = "RUNNING, and still running after boot"
    observed.actual = sample.state if sample.phases.running is not None else f"not running: {sample.error}"
    observed.values = {"name": sample.name, "lxcpath": sample.lxc.path}
    assert sample.phases.running is not None, sample.error or f"{sample.name} did not start"
    assert sample.stopped_after is None, sample.error


def test_unprivileged(check, sample, sample_index, sample_lxc, observed):
    _needs_running(sample)
    pid = sample.init_pid
    mapping = container_facts.uid_map(pid) if pid else []
    observed.expected = f"init in a user namespace, root mapped to a subordinate uid of {sample_lxc.owner}"
    observed.actual = ", ".join(" ".join(map(str, line)) for line in mapping) or "no uid_map"
    observed.evidence = f"/proc/{pid}/uid_map of {sample.name}'s init"
    assert mapping, f"{sample.name}'s init is not running"
    assert mapping != [(0, 0, 4294967295)], f"{sample.name} runs privileged: its root is the host's root"
    assert all(outside >= 65536 for _, outside, _ in mapping), f"{sample.name} maps ids onto the host's own users"


def _limit(sample, profile, observed, keys: tuple[str, str], setting: str, minus: str | None = None):
    _needs_running(sample)
    wanted = parse_size(profile.setting(setting))
    found = container_facts.cgroup_value(sample, keys[0])
    if found is None:  # cgroup2
        found = container_facts.cgroup_value(sample, keys[1])
        if found is not None and minus and found.isdigit():  # v2 swap.max is swap alone
            memory = container_facts.cgroup_value(sample, "memory.max")
            found = str(int(found) + int(memory)) if memory and memory.isdigit() else found
    observed.expected = f"{keys[0]} = {format_size(wanted)}"
    observed.actual = f"{found}" + (f" ({format_size(int(found))})" if found and found.isdigit() else "")
    observed.values = {"expected": profile.setting(setting)}
    return wanted, found


def test_memory_limit(check, sample, sample_index, profile, observed):
    wanted, found = _limit(sample, profile, observed, ("memory.limit_in_bytes", "memory.max"), "containers.memory_limit")
    assert found is not None, f"{sample.name} has no memory cgroup file"
    assert found.isdigit() and int(found) == wanted, f"{sample.name}'s memory limit is {found}, the profile wants {format_size(wanted)}"


def test_memsw_limit(check, sample, sample_index, profile, observed):
    if not profile.setting("containers.memsw_limit"):
        pytest.skip("the profile sets no containers.memsw_limit")
    wanted, found = _limit(sample, profile, observed, ("memory.memsw.limit_in_bytes", "memory.swap.max"),
                           "containers.memsw_limit", minus="memory.max")
    assert found is not None, "the kernel does not account swap per cgroup (see host.swap_accounting)"
    assert found.isdigit() and int(found) == wanted, f"{sample.name}'s memory+swap limit is {found}, the profile wants {format_size(wanted)}"


def test_memory_enforced(check, fleet, profile, observed):
    running = [s for s in fleet.samples if s.phases.running is not None]
    if not running:
        pytest.skip("no sample is running (see containers.running)")
    limit = parse_size(profile.setting("containers.memory_limit") or "512M")
    killed, evidence = container_facts.memory_enforced(running[0], limit)
    observed.expected = f"a process allocating more than {format_size(limit)} is killed"
    observed.actual = "killed" if killed else "not killed"
    observed.evidence = evidence
    assert killed, f"a process in {running[0].name} allocated past {format_size(limit)} and was not killed"


def test_mac(check, sample, sample_index, profile, observed):
    prefix = profile.setting("containers.mac_prefix") or "52:56"
    owners = container_facts.defined_macs().get(sample.mac.lower(), [])
    others = [o for o in owners if o != sample.name]
    observed.expected = f"a unicast MAC starting {prefix}, used by no other container on the host"
    observed.actual = sample.mac + (f", also set in {', '.join(others)}" if others else "")
    observed.values = {"config": str(sample.config_path)}
    problem = container_facts.mac_problem(sample.mac, prefix)
    assert problem is None, problem
    assert not others, f"{sample.mac} is also the MAC of {', '.join(others)}"


def test_ipv4(check, sample, sample_index, fleet, network, observed):
    _needs_running(sample)
    if fleet.addresses:
        first = last = fleet.addresses[sample_index - 1].split("/")[0]
        observed.expected = f"{first} (the static plan), unique in the fleet"
    else:
        first, last = network.lab.dhcp_range if network.lab else (None, None)
        observed.expected = f"an address in {first}-{last}, unique in the fleet" if first else "an address unique in the fleet"
    sharing = [s.name for s in fleet.samples if s is not sample and s.address and s.address == sample.address]
    observed.actual = sample.address or f"no address: {sample.error}"
    observed.values = {"name": sample.name}
    assert sample.address, sample.error or f"{sample.name} got no IPv4 address"
    assert first is None or container_facts.in_range(sample.address, first, last), f"{sample.address} is outside {first}-{last}"
    assert not sharing, f"{sample.address} is also the address of {', '.join(sharing)}"


def test_machine_id(check, sample, sample_index, fleet, observed):
    if not sample.login:
        pytest.skip(f"no login to {sample.name} (see containers.ssh_login)")
    mine = sample.login["machine_id"]
    sharing = [s.name for s in fleet.samples if s is not sample and s.login.get("machine_id") == mine]
    observed.expected = "a machine-id no other clone has"
    observed.actual = mine + (f", shared with {', '.join(sharing)}" if sharing else "")
    assert mine, f"{sample.name} has an empty /etc/machine-id"
    assert not sharing, f"{sample.name} shares its machine-id with {', '.join(sharing)}"


def test_gold_clean(check, gold_image, observed):
    assert gold_image.lxc.exists(gold_image.name), f"there is no gold container {gold_image.name} in {gold_image.lxc.path}"
    root = gold_image.rootfs
    machine_id = (root / "etc/machine-id").read_text().strip() if (root / "etc/machine-id").exists() else ""
    leases = sorted(str(p.relative_to(root)) for p in (root / "var/lib/dhcp").glob("dhclient*.lease*"))
    observed.expected = "an empty /etc/machine-id and no dhclient lease in the gold image"
    observed.actual = f"machine-id {machine_id or '(empty)'}; leases: {', '.join(leases) or 'none'}"
    assert not machine_id, f"the gold image {gold_image.name} has machine-id {machine_id}: every clone inherits it"
    assert not leases, f"the gold image holds DHCP leases ({', '.join(leases)}): every clone asks for the same address"


def test_boot_time(check, sample, sample_index, profile, observed):
    _needs_running(sample)
    budget = float(profile.setting("containers.boot_budget_s") or 30)
    phases = sample.phases.as_dict()
    total = phases["login"]
    observed.expected = f"login within {budget:g} s of lxc-start"
    observed.actual = f"{total} s" if total is not None else f"no login: {sample.error}"
    observed.metrics = {f"{name}_s": value for name, value in phases.items()}
    slow_logins = sample.login.get("slow_attempts", [])
    if total is None or total > budget:
        observed.evidence = container_facts.slowest_units(sample)
    if slow_logins:
        observed.evidence = "\n".join([f"login attempts sshd did not answer in time: {'; '.join(slow_logins)}",
                                        observed.evidence or ""]).strip()
    assert total is not None, sample.error or "the boot did not finish"
    assert total <= budget, f"{sample.name} took {total} s to a login; the budget is {budget:g} s"


def test_ssh_login(check, sample, sample_index, fleet, observed):
    _needs_running(sample)
    observed.expected = f"login as {fleet.user}; hostname {sample.name}; PID 1 systemd"
    observed.actual = (f"{sample.login['method']} login; hostname {sample.login['hostname']}, PID 1 {sample.login['pid1']}"
                       if sample.login else f"no login: {sample.error}")
    observed.evidence = sample.banner
    assert sample.login, sample.error or "no login"
    assert sample.login["hostname"] == sample.name, f"hostname is {sample.login['hostname']}, not {sample.name}"
    assert sample.login["pid1"] == "systemd", f"PID 1 is {sample.login['pid1']}, not systemd"


def test_guest_fixes(check, sample, sample_index, observed):
    _needs_running(sample)
    pam = container_facts.attach(sample, "grep -H pam_loginuid /etc/pam.d/sshd /etc/pam.d/cron 2>/dev/null").stdout
    pin = container_facts.attach(sample, "cat /etc/apt/preferences.d/no-dbus.pref 2>/dev/null").stdout
    required = [line for line in pam.splitlines() if "required" in line.split(":", 1)[-1].split()[:2]]
    observed.expected = "pam_loginuid optional for sshd and cron; dbus pinned to -1"
    observed.actual = (pam.strip() or "no pam_loginuid line") + "; no-dbus pin " + ("present" if "Package: dbus" in pin else "missing")
    assert not required, f"pam_loginuid is still required: {'; '.join(required)}"
    assert "Package: dbus" in pin and "Pin-Priority: -1" in pin, "/etc/apt/preferences.d/no-dbus.pref is missing"
