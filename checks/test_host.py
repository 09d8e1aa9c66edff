"""Host tuning and LXC configuration, against the profile's `host:` section.

Facts come through the target's ``host`` (readers.machine: this machine by
default, ``--hosts`` for another); ``checks/host.yaml`` says which items run and why.
"""

import pytest

from lxc_compliance.readers import host as host_facts
from lxc_compliance.readers import tuning
from lxc_compliance.readers.backing import union_lines
from lxc_compliance.readers.cgroup_dialect import applied_limit, limit_lines
from lxc_compliance.readers.formats import parse_size
from lxc_compliance.readers.host import KernelCommandLine, MemoryAccounting


def test_sysctl_minimum(check, host, profile, persisted_sysctls, observed):
    minimum = profile.sysctl_minimum(check.sysctl)
    value = host.sysctl(check.sysctl)
    at_boot = persisted_sysctls.get(check.sysctl)
    boot_value = tuning.sysctl_number(at_boot.value) if at_boot else None
    observed.expected = f"{check.sysctl} >= {minimum} (for {profile.containers} containers), now and at boot"
    observed.values = {"minimum": minimum}
    observed.actual = f"{check.sysctl} = {value}" if value is not None else f"no {host_facts.sysctl_path(check.sysctl)}"
    observed.evidence = (f"at boot: {at_boot.value} ({at_boot.where})" if at_boot
                         else "at boot: not set in sysctl.d or /etc/sysctl.conf (the kernel's default)")
    assert value is not None, f"{check.sysctl} does not exist on this host (no {host_facts.sysctl_path(check.sysctl)})"
    assert value >= minimum, f"{check.sysctl} is {value}; {profile.containers} containers need at least {minimum}"
    assert at_boot is None or (boot_value is not None and boot_value >= minimum), (
        f"{check.sysctl} is {value} now, but {at_boot.where} sets {at_boot.value}: the next boot lowers it below {minimum}")


def test_user_limit(check, profile, limit_lines, container_users, observed):
    wanted = profile.setting(check.setting)
    limits = tuning.session_limits(limit_lines, container_users, check.limit)
    short = [limit for limit in limits if limit.below(wanted)]
    observed.expected = f"{check.limit} >= {wanted}, soft and hard, for {', '.join(container_users)}"
    observed.actual = "; ".join(limit.describe() for limit in limits)
    observed.evidence = "as pam_limits gives a login session: /etc/security/limits.conf, then limits.d/*.conf"
    observed.values = {"minimum": wanted}
    assert not short, "; ".join(limit.shortfall() for limit in short) + f" (at least {wanted} wanted)"


def test_default_tasks_max(check, profile, systemd, observed):
    minimum = profile.setting("host.default_tasks_max")
    effective = systemd.default_tasks_max
    shown = "unlimited" if effective is None else str(effective)
    observed.expected = f"DefaultTasksMax >= {minimum}"
    observed.actual = f"DefaultTasksMax={systemd.default_tasks_max_setting} ({shown} tasks)"
    observed.evidence = "read from " + ("the running systemd" if systemd.running else ", ".join(systemd.system_conf_files))
    observed.values = {"minimum": minimum}
    assert effective is None or effective >= minimum, f"DefaultTasksMax allows {effective} tasks; at least {minimum} needed"


def test_service_tasks_max(check, profile, systemd, observed):
    minimum = profile.setting("host.default_tasks_max")
    units = [unit for unit in check.units if systemd.unit_exists(unit)]
    if not units:
        pytest.skip(f"neither {' nor '.join(check.units)} is installed here, so no container starts from them")
    limits = {unit: systemd.unit_tasks_max(unit) for unit in units}
    low = {unit: limit for unit, limit in limits.items() if limit is not None and limit < minimum}
    observed.expected = f"TasksMax >= {minimum} for {', '.join(units)}"
    observed.actual = ", ".join(f"{u}: {'unlimited' if v is None else v}" for u, v in limits.items())
    observed.values = {"minimum": minimum, "unit": next(iter(low), units[0])}
    assert not low, f"too few tasks for containers started from {', '.join(low)}"


def test_kernel_cmdline(check, host, profile, observed):
    wanted = profile.setting("host.kernel_cmdline")
    cmdline, accounting = KernelCommandLine(host), MemoryAccounting(host)
    missing = [p for p in wanted if p not in cmdline.running and not accounting.in_force(p)]
    pending = [p for p in missing if p in cmdline.grub]
    observed.expected = f"{' '.join(wanted)} on the kernel command line, or already the kernel's default"
    observed.actual = " ".join(cmdline.running)
    observed.evidence = f"memory controller enabled: {accounting.controller_enabled}; swap accounting files: {accounting.swap_files}"
    observed.values = {"wanted": " ".join(wanted)}
    assert not pending, f"{' '.join(pending)} is in /etc/default/grub but not in the running kernel: a reboot is pending"
    assert not missing, f"the running kernel lacks {' '.join(missing)}"


def test_grub_cmdline(check, host, profile, observed):
    wanted = profile.setting("host.kernel_cmdline")
    cmdline = KernelCommandLine(host)
    if not cmdline.grub_files:
        pytest.skip("no /etc/default/grub: this host does not boot with GRUB; make sure its boot loader passes "
                    + " ".join(wanted))
    missing = [p for p in wanted if p not in cmdline.grub]
    observed.expected = f"{' '.join(wanted)} in GRUB_CMDLINE_LINUX(_DEFAULT)"
    observed.actual = " ".join(cmdline.grub) or "(no parameters)"
    observed.evidence = "read from " + ", ".join(cmdline.grub_files)
    observed.values = {"missing": " ".join(missing)}
    assert not missing, f"GRUB does not pass {' '.join(missing)}"


def test_memory_controller(check, cgroups, observed):
    problem = cgroups.controller_problem("memory")
    observed.expected = ("memory in cgroup2's cgroup.controllers at /sys/fs/cgroup" if cgroups.layout == "unified"
                         else "a cgroup v1 hierarchy with the memory controller")
    observed.actual = problem or ("memory offered at /sys/fs/cgroup" if cgroups.layout == "unified"
                                  else f"memory at {cgroups.v1_hierarchy('memory').path}")
    observed.evidence = cgroups.describe()
    assert problem is None, f"memory limits cannot be enforced: {problem}"


def test_cgroup_layout(check, host, cgroups, cgroup_dialect, observed):
    chosen = KernelCommandLine(host).layout_choices()
    observed.expected = "cgroup2 alone at /sys/fs/cgroup (unified)"
    observed.actual = f"{cgroups.layout}: {cgroup_dialect.describe().removeprefix('this ' + cgroups.layout + ' host ')}"
    observed.evidence = "\n".join([cgroups.describe(), "kernel command line: " + (", ".join(chosen) or
                                                                               "nothing chooses the layout")])
    assert cgroups.layout == "unified", (
        f"this host boots the {cgroups.layout} cgroup layout" + (f" ({', '.join(chosen)})" if chosen else "")
        + f", which systemd 256+ and LXC 7.0 no longer support: its containers' {cgroup_dialect.applied}.* limits "
        "stop applying when it moves to the unified layout")


def test_swap_accounting(check, host, observed):
    accounting = MemoryAccounting(host)
    observed.expected = "memory.memsw.limit_in_bytes (cgroup v1) or memory.swap.max (v2) exists"
    observed.actual = ", ".join(accounting.swap_files) or "no swap accounting files"
    assert accounting.controller_enabled, "the memory controller is disabled"
    assert accounting.swap_accounting, "the kernel does not account swap per cgroup"


def test_lxc_user_exists(check, lxc_user, observed):
    observed.expected = f"user {lxc_user.name} exists"
    observed.actual = f"{lxc_user.name}: home {lxc_user.home}" if lxc_user.exists else f"no user {lxc_user.name}"
    observed.values = {"user": lxc_user.name}
    assert lxc_user.exists, f"there is no user {lxc_user.name}"


def test_subids_cover_idmap(check, host_files, lxc_user, default_config, observed):
    path, config = default_config
    subids = host_files.subids(check.idmap_kind)
    maps = [m for m in (config.idmaps() if config else []) if m[0] == check.idmap_kind]
    uncovered = [m for m in maps if subids.covering(lxc_user.name, m[2], m[3]) is None]
    observed.expected = f"every lxc.idmap {check.idmap_kind} line of {path} inside {lxc_user.name}'s ranges in {subids.path}"
    observed.actual = ", ".join(f"{r.start}:{r.count}" for r in subids.of(lxc_user.name)) or f"no range for {lxc_user.name}"
    observed.evidence = "\n".join(" ".join(map(str, m)) for m in maps) or f"no lxc.idmap {check.idmap_kind} lines in {path}"
    first = uncovered[0] if uncovered else (check.idmap_kind, 0, 100000, 65536)
    observed.values = {"user": lxc_user.name, "start": first[2], "end": first[2] + first[3] - 1}
    if not maps:
        pytest.skip(f"not checked: host.lxc_idmap failed: {path} has no lxc.idmap {check.idmap_kind} line to cover")
    assert not uncovered, f"not granted in {subids.path}: " + ", ".join(f"{m[2]}-{m[2] + m[3] - 1}" for m in uncovered)


def test_subids_disjoint(check, host_files, lxc_user, observed):
    subids = host_files.subids(check.idmap_kind)
    clashes = subids.overlaps(lxc_user.name)
    observed.expected = f"{lxc_user.name}'s ranges in {subids.path} overlap no other owner's"
    observed.actual = "; ".join(f"{a.start}:{a.count} overlaps {b.owner}:{b.start}:{b.count} (line {b.line})" for a, b in clashes) or "no overlap"
    observed.values = {"user": lxc_user.name}
    assert not clashes, observed.actual


def test_raw_idmap(check, host_files, observed):
    files = [host_files.subids(kind) for kind in "ug"]
    missing = [f.path for f in files if f.covering("root", 1000, 1) is None]
    observed.expected = "root:1000:1 in /etc/subuid and /etc/subgid"
    observed.actual = f"missing from {', '.join(missing)}" if missing else "present in both"
    assert not missing, f"root:1000:1 is missing from {', '.join(missing)}"


def test_lxc_usernet(check, host_files, profile, observed):
    wanted = profile.setting("host.usernet")
    user = profile.setting("host.user") or "root"
    text = host_files.usernet_text
    grants = host_files.usernet_grants(user, wanted["type"], wanted["link"])
    allowed = sum(g.count for g in grants)
    observed.expected = f"'{user} {wanted['type']} {wanted['link']} N' with N >= {profile.containers}"
    observed.actual = f"{allowed} allowed" + (f" (lines {', '.join(str(g.line) for g in grants)})" if grants else "")
    observed.evidence = text if text is not None else "/etc/lxc/lxc-usernet does not exist"
    observed.values = {"user": user, "type": wanted["type"], "link": wanted["link"], "minimum": max(profile.containers, 1)}
    assert allowed >= profile.containers, f"{user} may create {allowed} {wanted['type']} on {wanted['link']}; {profile.containers} containers need {profile.containers}"


def test_pam_cgfs(check, host_files, profile, observed):
    wanted = set(profile.setting("host.pam_cgfs_controllers"))
    delegated = host_files.pam_cgfs
    files = list(delegated)
    short = {path: sorted(wanted - (found or set())) for path, found in delegated.items() if not wanted <= (found or set())}
    observed.expected = f"pam_cgfs.so -c with {','.join(sorted(wanted))} in every common-session file"
    observed.actual = "; ".join(f"{p}: {','.join(sorted(c)) if c else 'no pam_cgfs'}" for p, c in delegated.items()) or "no common-session files"
    observed.values = {"wanted": ",".join(profile.setting("host.pam_cgfs_controllers"))}
    assert files, "no /etc/pam.d/common-session* files"
    assert not short, "; ".join(f"{p} lacks {', '.join(m)}" for p, m in short.items())


def test_lxc_path_traversable(check, lxc_user, observed):
    if not lxc_user.exists:
        pytest.skip(f"not checked: host.lxc_user failed: there is no user {lxc_user.name}")
    blocked = lxc_user.untraversable()
    observed.expected = f"every directory down to {lxc_user.lxc_path} has o+x"
    observed.actual = ", ".join(blocked) or "all traversable"
    observed.values = {"blocked": " ".join(b.split(" ")[0] for b in blocked)}
    assert not blocked, f"not traversable by the container's root: {', '.join(blocked)}"


def test_lxc_default(check, profile, default_config, cgroup_dialect, observed):
    path, config = default_config
    expected = profile.setting(check.setting)
    shown = "\n".join(expected) if isinstance(expected, list) else str(expected)
    observed.values = {
        "expected": shown,
        "config": path,
        "expected_lines": "; ".join(f"'lxc.idmap = {line}'" for line in expected) if isinstance(expected, list) else shown,
    }
    if check.lxc_key in ("memory", "memsw"):
        memory, memsw = (parse_size(profile.setting(f"host.{k}_limit") or "") for k in ("memory", "memsw"))
        line = limit_lines(cgroup_dialect.applied, memory, memsw).get(check.lxc_key)
        observed.values["line"] = line or f"{cgroup_dialect.applied}.memory.* (with the memory limit)"
        observed.expected = f"{check.lxc_key} limit {shown}" + (f" ({line})" if line else "")
        assert config is not None, f"{path} does not exist"
        found = applied_limit(config.entries, check.lxc_key, cgroup_dialect)
        observed.actual, observed.evidence = found.describe(), found.evidence()
        problem = found.problem(parse_size(shown), path)
        assert problem is None, problem
        return
    found = config.setting(check.lxc_key) if config else None
    observed.expected = f"{check.lxc_key} = {shown}"
    observed.actual = f"{found}" if found is not None else f"not set in {path}"
    entry = config.entry(check.lxc_key) if config else None
    observed.evidence = entry.where() if entry else ("\n".join(e.where() for e in config.entries) if config else f"{path} does not exist")
    assert config is not None, f"{path} does not exist"
    assert config.matches(check.lxc_key, expected), f"{path} sets {found!r}, the profile wants {shown!r}"


def test_lxc_legacy_keys(check, host, target, lxc_user, observed):
    paths = ["/etc/lxc/default.conf"] + ([lxc_user.config_path] if lxc_user and lxc_user.exists else [])
    configs = {path: host_facts.lxc_config(host, path) for path in paths}
    version = host_facts.version_of(target.lxc_version)
    legacy = [e for config in configs.values() if config for e in config.legacy_entries()]
    observed.expected = "only LXC 3+ keys (lxc.net.N.*, lxc.idmap, ...)"
    observed.actual = "; ".join(e.where() for e in legacy) or f"no legacy keys in {', '.join(p for p, c in configs.items() if c)}"
    observed.values = {
        "config": " ".join(sorted({e.path for e in legacy})) or paths[0],
        "renames": ", ".join(f"{e.key} -> {e.current_key or '(removed)'}" for e in legacy),
    }
    if version is None or version < (3,):
        pytest.skip("LXC is not installed or older than 3.0, which still reads the old keys")
    assert not legacy, f"LXC {'.'.join(map(str, version))} rejects " + ", ".join(
        f"{e.key} (line {e.line}; now {e.current_key or 'removed'})" for e in legacy
    )


def test_lxc_net_disabled(check, host_files, observed):
    exists, setting = host_files.lxc_net
    observed.expected = 'USE_LXC_BRIDGE="false" in /etc/default/lxc-net'
    observed.actual = f'USE_LXC_BRIDGE="{setting}"' if setting is not None else "USE_LXC_BRIDGE not set (lxc-net's default is true)"
    if not exists:
        observed.actual = "/etc/default/lxc-net does not exist"
    assert not exists or setting == "false", "lxc-net would start its own dnsmasq on lxcbr0 and take port 67"


def test_autostart(check, host, profile, lxc_user, systemd, observed):
    if lxc_user and not lxc_user.exists:
        pytest.skip(f"not checked: host.lxc_user failed: there is no user {lxc_user.name}")
    line = lxc_user.autostart_line if lxc_user else None
    service = systemd.enabled("lxc.service")
    owner = lxc_user.name if lxc_user else "root"
    observed.expected = f"'@reboot lxc-autostart' in {owner}'s crontab" + ("" if lxc_user else " or lxc.service enabled")
    observed.actual = line or ("lxc.service enabled" if service else f"no @reboot lxc-autostart for {owner}")
    observed.values = {"user": owner}
    if lxc_user:
        assert line, f"{owner}'s crontab does not run lxc-autostart at boot"
    else:
        assert line or service, "nothing starts the containers at boot"


def test_minimum_version(check, target, profile, observed):
    minimum = profile.setting(check.setting)
    text = target.facts[check.fact]
    observed.expected = f">= {minimum}"
    observed.actual = text or "not installed"
    observed.values = {"expected": minimum}
    found = host_facts.version_of(text)
    assert found is not None, f"cannot tell the version ({observed.actual})"
    assert found >= host_facts.version_of(minimum), f"{text} is older than {minimum}"


def test_fstab_union(check, host, observed):
    lines = union_lines(host)
    missing = [line for line in lines if not line.kernel_has]
    observed.values = {"lines": ", ".join(line.where for line in missing) or "none"}
    observed.expected = "no aufs or unionfs mount, or a kernel that has it"
    observed.actual = "; ".join(f"{line.where}: {line.fstype} on {line.target}" for line in lines) or "no union mounts"
    observed.evidence = "\n".join(f"{line.where}: {line.line}" for line in lines)
    assert not missing, (f"{len(missing)} /etc/fstab line(s) mount {missing[0].fstype}, which this kernel does not "
                         f"have (/proc/filesystems): {', '.join(line.target for line in missing[:3])}"
                         + (" ..." if len(missing) > 3 else "") + f"; use {missing[0].replacement}")


def test_virtualization(check, host, observed):
    flags = host_facts.cpu_virtualization(host)
    kvm = host.exists("/dev/kvm")
    observed.expected = "/dev/kvm and a CPU flag vmx or svm"
    observed.actual = f"/dev/kvm {'present' if kvm else 'missing'}; CPU flags: {', '.join(flags) or 'none'}"
    assert flags, "the CPU does not offer hardware virtualization (or it is disabled in firmware)"
    assert kvm, "/dev/kvm is missing: the kvm module is not loaded"


def _no_systemd(user_manager):
    if not user_manager.systemd_host:
        pytest.skip("systemd is not PID 1 here: pam_cgfs delegates the cgroups (host.pam_cgfs)")


def test_user_delegation(check, profile, user_manager, observed):
    _no_systemd(user_manager)
    wanted = {c for c in profile.given("host.pam_cgfs_controllers") or ["memory", "pids"] if c in ("memory", "pids", "cpu", "io", "cpuset")}
    found = user_manager.delegated_controllers
    missing = sorted(wanted - found) if found is not None else []
    observed.expected = f"user@{user_manager.uid}.service delegates {', '.join(sorted(wanted))}"
    observed.actual = f"Delegate: {'all controllers' if found is None else ' '.join(sorted(found)) or 'none'}"
    observed.values = {"user": user_manager.user}
    assert not missing, f"{user_manager.user}'s manager is not delegated {', '.join(missing)}: their containers get no {missing[0]} cgroup"


def test_user_autostart_delegated(check, lxc_user, user_manager, observed):
    _no_systemd(user_manager)
    line = lxc_user.autostart_line
    observed.expected = f"linger for {user_manager.user}, and lxc-autostart started through systemd-run --user --scope -p Delegate=yes"
    observed.actual = f"linger {'on' if user_manager.lingering else 'off'}; crontab: {line or 'no @reboot lxc-autostart'}"
    observed.values = {"user": user_manager.user}
    assert user_manager.lingering, (f"{user_manager.user} does not linger: no manager of theirs runs at boot to give "
                                    "the containers a delegated cgroup")
    assert user_manager.starts_delegated(line), (f"'{line}' starts the containers in cron's cgroup, not "
                                                 f"{user_manager.user}'s: they fail to start at boot on this unified host")


def test_user_slice_tasks_max(check, profile, user_manager, observed):
    _no_systemd(user_manager)
    minimum = int(profile.setting("host.default_tasks_max"))
    found = user_manager.slice_tasks_max
    observed.expected = f"user-{user_manager.uid}.slice TasksMax >= {minimum}"
    observed.actual = f"TasksMax={user_manager.slice_tasks_max_setting}" + (f" ({found} tasks)" if found is not None else " (unlimited)")
    observed.values = {"uid": user_manager.uid, "minimum": minimum}
    assert found is None or found >= minimum, f"{user_manager.user}'s slice allows {found} tasks; {minimum} are needed"


def test_fleet_room(check, planned_room, observed):
    if isinstance(planned_room, str):
        pytest.skip(planned_room)
    observed.values = {"lxcpath": planned_room.room.path}
    observed.expected = "room for every planned container, its copy of the gold and what gets installed in it"
    observed.actual = planned_room.describe()
    short = planned_room.shortfalls
    assert not short, "; ".join(short)

