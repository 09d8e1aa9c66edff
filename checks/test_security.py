"""How confined the containers are: the fleet's, read statically from the
effective config (``loaded``), and the running samples', read from their init.
``checks/security.yaml`` says why each check matters and which CIS Docker item
it mirrors."""

import pytest


def _unprivileged_config_run_privileged(member, confinement):
    """An unprivileged container's config (userns.conf) without its id map: caps, devices and
    sysfs are relaxed for a user namespace it no longer has; the root cause is security.unprivileged."""
    if confinement.privileged and member.written_unprivileged:
        pytest.skip(f"not checked: security.unprivileged.{member.label} failed: its config is written for an id map "
                    "(userns.conf) but has none")


def _where(member, observed, **values):
    observed.values = {"name": member.name, "config": str(member.config_path), "owner": member.owner, **values}


def test_unprivileged(check, loaded, confinement, security_policy, observed):
    _where(loaded, observed)
    root = confinement.root_mapping
    observed.expected = "an id map with the container's root mapped to a subordinate uid"
    observed.actual = "no id map" if root is None else f"root mapped to host uid {root}"
    if security_policy.allow_privileged:
        observed.warn_only = "the profile allows privileged containers (security.allow_privileged)"
        observed.by_design = True
    assert not confinement.privileged, f"{loaded.label} is privileged: its root is the host's root"


def test_idmap_isolated(check, loaded, fleet_view, observed):
    _where(loaded, observed)
    sharing = fleet_view.sharing(loaded, lambda m: tuple(m.idmaps) if m.owner == loaded.owner and not m.load_error else None)
    observed.expected = "an id range no other container of its owner maps"
    observed.actual = "; ".join(" ".join(map(str, m)) for m in loaded.idmaps) or "no id map" + (
        f"; also mapped by {', '.join(sharing)}" if sharing else "")
    if not loaded.idmaps:
        pytest.skip(f"{loaded.label} has no id map (see security.unprivileged)")
    assert not sharing, f"{loaded.label} shares its id range with {', '.join(sharing)}"


def test_apparmor(check, loaded, confinement, host_apparmor, observed):
    _where(loaded, observed)
    profile, incomplete = confinement.apparmor_profile, confinement.get("lxc.apparmor.allow_incomplete")
    observed.expected = "an AppArmor profile other than unconfined; allow_incomplete off; a kernel that enforces it"
    observed.actual = f"lxc.apparmor.profile = {profile}; allow_incomplete = {incomplete or '0'}"
    assert profile != "unconfined", f"{loaded.label} runs unconfined (lxc.apparmor.profile = unconfined)"
    assert incomplete != "1", f"{loaded.label} starts even where its AppArmor profile cannot be loaded (allow_incomplete)"
    observed.warn_only = "this kernel has no AppArmor: containers run unconfined whatever their config says"
    observed.by_design = True
    assert host_apparmor, f"the kernel enforces no AppArmor, so {loaded.label}'s profile {profile} is not applied"


def test_apparmor_running(check, running_init, sample, host_apparmor, observed):
    label = running_init.apparmor_label
    observed.expected = "the init runs under an AppArmor profile, not unconfined"
    observed.actual = f"label {label}" if label else "no AppArmor label (the kernel has no AppArmor)"
    if not host_apparmor:
        observed.warn_only = "this kernel has no AppArmor: containers run unconfined whatever their config says"
        observed.by_design = True
    assert label and not label.startswith("unconfined"), f"{sample.name}'s init is not confined by AppArmor"


def test_nesting(check, loaded, confinement, security_policy, observed):
    _unprivileged_config_run_privileged(loaded, confinement)
    nesting = confinement.nesting
    _where(loaded, observed, nesting=", ".join(nesting) or "nothing")
    observed.expected = "no nesting" + (" (the profile allows it)" if security_policy.allow_nesting else "")
    observed.actual = "; ".join(nesting) or "no nesting"
    if security_policy.allow_nesting:
        pytest.skip("the profile allows nesting (security.allow_nesting)")
    assert not nesting, f"{loaded.label} may nest containers: {'; '.join(nesting)}"


def test_seccomp(check, loaded, confinement, observed):
    policy = confinement.seccomp_profile
    _where(loaded, observed)
    observed.expected = "lxc.seccomp.profile set to a readable policy"
    observed.actual = f"lxc.seccomp.profile = {policy}" if policy else "no seccomp policy"
    assert policy, f"{loaded.label} has no seccomp policy (lxc.seccomp.profile)"
    assert confinement.readable(policy), f"{loaded.label}'s seccomp policy {policy} cannot be read: the container does not start"


def test_seccomp_running(check, running_init, sample, observed):
    mode = running_init.seccomp
    observed.expected = "Seccomp: 2 (filter) in the init's status"
    observed.actual = f"Seccomp: {mode or 'unknown'}"
    assert mode == "2", f"{sample.name}'s init runs without a seccomp filter (Seccomp: {mode or 'unknown'})"


def test_capabilities(check, loaded, confinement, security_policy, observed):
    _unprivileged_config_run_privileged(loaded, confinement)
    forbidden = security_policy.forbidden
    kept = sorted(confinement.capabilities & forbidden)
    _where(loaded, observed, forbidden=" ".join(sorted(forbidden)))
    observed.expected = f"none of {', '.join(sorted(forbidden))} kept"
    observed.actual = f"keeps {', '.join(kept)}" if kept else "none kept"
    observed.evidence = (f"lxc.cap.{'keep' if confinement.keeps else 'drop'} = "
                         f"{confinement.get('lxc.cap.drop').replace(chr(10), ' ') or '(empty)'}")
    if not confinement.privileged:
        pytest.skip(f"{loaded.label} is unprivileged: its capabilities hold only in its own user namespace")
    assert not kept, f"{loaded.label} keeps {', '.join(kept)}"


def test_capabilities_running(check, running_init, sample, security_policy, observed):
    bounding = running_init.bounding_set
    forbidden = security_policy.forbidden
    kept = sorted(bounding & forbidden)
    observed.expected = f"none of {', '.join(sorted(forbidden))} in the init's bounding set"
    observed.actual = f"CapBnd keeps {', '.join(kept)}" if kept else f"CapBnd: {len(bounding)} capabilities, none forbidden"
    observed.evidence = "CapBnd: " + " ".join(sorted(bounding))
    if not sample.privileged:
        pytest.skip(f"{sample.name} is unprivileged: its capabilities hold only in its own user namespace")
    assert not kept, f"{sample.name}'s init keeps {', '.join(kept)}"


def test_devices(check, loaded, confinement, observed):
    _unprivileged_config_run_privileged(loaded, confinement)
    problem = confinement.device_problem()
    _where(loaded, observed)
    observed.expected = "devices.deny = a, then an allow-list"
    observed.actual = problem or "deny-all with an allow-list"
    if not confinement.privileged:
        pytest.skip(f"{loaded.label} is unprivileged: it cannot make device nodes of the host's devices")
    assert problem is None, f"{loaded.label}: {problem}"


def test_mounts(check, loaded, confinement, security_policy, observed):
    _unprivileged_config_run_privileged(loaded, confinement)
    found = confinement.sensitive_mounts(security_policy.sensitive_paths)
    if not confinement.privileged:  # sysfs in a user namespace refuses writes to the host's settings
        found = [line for line in found if not line.startswith("lxc.mount.auto sys:rw")]
    _where(loaded, observed, mounts="; ".join(found) or "none")
    observed.expected = "no bind mount of a sensitive host path; proc and sys not read-write"
    observed.actual = "; ".join(found) or "none"
    assert not found, f"{loaded.label}: " + "; ".join(found)


def _denied(check, container, report, security_policy, dmesg_restrict, observed):
    """The probe's finding for CHECK's action in CONTAINER (a Sample), asserted denied."""
    finding = report.finding(check.probe) if not report.error else None
    observed.expected = check.expected
    observed.values = {"name": container.name, "config": str(container.config_path),
                       "allowed": (finding.reason.partition("allowed by ")[2] if finding else "")
                       or "the line that allows it"}
    if finding is None:
        observed.actual = f"not probed: {report.error}"
        pytest.fail(f"{container.name}: the denial probe could not run: {report.error}", pytrace=False)
    observed.actual = f"{finding.verdict}: {finding.reason}"
    observed.evidence = (f"{finding.evidence}\nas root inside {container.name} "
                         f"({'privileged' if container.privileged else 'unprivileged'}), "
                         f"capabilities held: {report.capabilities_held}")
    if finding.verdict == "absent":
        pytest.skip(f"nothing to try in {container.name}: {finding.reason}")
    if check.probe == "kmsg" and dmesg_restrict == 0:
        pytest.skip("not checked: the host lets every user read its kernel log (kernel.dmesg_restrict = 0, "
                    "see host.dmesg_restrict)")
    if container.privileged and check.probe in ("mount", "kmsg") and security_policy.allow_privileged:
        observed.warn_only = ("the profile allows privileged containers, which keep sys_admin and syslog by design "
                              "(security.allow_privileged)")
        observed.by_design = True
    assert finding.verdict in ("denied", "contained"), f"{container.name}: not refused: {finding.reason}"


def test_denied(check, sample, running_init, denial_probes, security_policy, dmesg_restrict, observed):
    _denied(check, sample, denial_probes(sample), security_policy, dmesg_restrict, observed)


def test_denied_started(check, member, started, denial_probes, security_policy, dmesg_restrict, observed):
    if started.init_pid is None:
        pytest.skip(f"not checked: fleet.started.{member.label} failed: {member.label} is not running")
    _denied(check, started, denial_probes(started), security_policy, dmesg_restrict, observed)


# --- LXD instances ----------------------------------------------------------------------


def _lxd_flag_off(instance, key, allowed_by, observed, why):
    """An instance's boolean security KEY must be off, unless the profile's ALLOWED_BY setting allows it (warned)."""
    observed.values = {"instance": instance.label}
    observed.expected = f"{key} unset or false"
    observed.actual = f"{key} = {instance.config.get(key, '(unset)')}"
    if allowed_by:
        observed.warn_only = allowed_by
        observed.by_design = True
    assert not instance.flag[key], f"{instance.label} {why} ({key} = true)"


def test_lxd_privileged(check, instance, security_policy, observed):
    _lxd_flag_off(instance, "security.privileged", security_policy.allow_privileged and
                  "the profile allows privileged containers (security.allow_privileged)", observed,
                  "is privileged: its root is the host's root")


def test_lxd_nesting(check, instance, security_policy, observed):
    _lxd_flag_off(instance, "security.nesting", security_policy.allow_nesting and
                  "the profile allows nesting (security.allow_nesting)", observed, "may run containers inside it")


def test_lxd_idmap_isolated(check, instance, observed):
    observed.values = {"instance": instance.label}
    observed.expected = "security.idmap.isolated = true"
    observed.actual = f"security.idmap.isolated = {instance.config.get('security.idmap.isolated', '(unset)')}"
    assert instance.flag["security.privileged"] or instance.flag["security.idmap.isolated"], (
        f"{instance.label} shares LXD's default id range with every other unprivileged instance")


def test_lxd_raw(check, instance, cgroup_dialect, observed):
    raw = instance.raw_keys
    weakening = instance.raw_lxc_weakenings()
    ignored = instance.raw_lxc_ignored(cgroup_dialect.applied)
    observed.values = {"instance": instance.label, "keys": " ".join(raw) or "raw.lxc"}
    observed.expected = "no raw.lxc, raw.apparmor or raw.seccomp (raw.idmap: security.lxd_raw_idmap)"
    observed.actual = ", ".join(raw) or "none"
    observed.evidence = "\n".join(f"{key}:\n{value}" for key, value in raw.items())
    assert not weakening, f"{instance.label}'s raw.lxc weakens it: " + "; ".join(weakening)
    assert not ignored, (f"{instance.label}'s raw.lxc sets cgroup lines LXC ignores here ('{cgroup_dialect.warning}'; "
                         f"{cgroup_dialect.describe()}): " + "; ".join(ignored))
    review = [key for key in raw if key != "raw.idmap"]
    if review:
        observed.warn_only = "raw settings bypass LXD's own checks: review them (the evidence holds each)"
    assert not review, f"{instance.label} sets {', '.join(review)}"


def test_lxd_disks(check, instance, security_policy, observed):
    from lxc_compliance.readers.lxd import SENSITIVE_SOURCES

    found = instance.sensitive_disks(tuple(security_policy.sensitive_paths) + SENSITIVE_SOURCES)
    observed.values = {"instance": instance.label}
    observed.expected = "no disk device from a sensitive host path"
    observed.actual = "; ".join(found) or "none"
    assert not found, f"{instance.label} has the host's " + "; ".join(found)


def test_lxd_devices(check, instance, observed):
    found = instance.host_devices
    observed.values = {"instance": instance.label}
    observed.expected = "no unix-char or unix-block device"
    observed.actual = "; ".join(found) or "none"
    assert not found, f"{instance.label} is given host devices: " + "; ".join(found)


def test_lxd_nic_filtering(check, instance, observed):
    found = instance.unfiltered_nics()
    observed.values = {"instance": instance.label}
    observed.expected = "security.mac_filtering and security.ipv4_filtering on every bridged NIC"
    observed.actual = "; ".join(found) or "filtered"
    assert not found, f"{instance.label} can spoof on the bridge: " + "; ".join(found)


def test_lxd_guest_api(check, instance, lxd, lxd_plan, observed):
    key, socket = lxd.words["guest_api"], lxd.words["guest_socket"]
    on = instance.guest_api(key)
    observed.values = {"instance": instance.label}
    observed.expected = f"{key} = false" if not lxd_plan.guest_api else f"{key} as the site likes (the profile allows it)"
    observed.actual = f"{key} = {instance.config.get(key, '(unset: true)')}: {socket} {'present' if on else 'absent'} inside"
    assert lxd_plan.guest_api or not on, f"{instance.label} offers {socket} ({key} is on) although the profile forbids it"


def test_lxd_guest_socket(check, instance, guest_socket, lxd_plan, observed):
    observed.values = {"instance": instance.label}
    observed.expected = (f"no {guest_socket.path} that answers" if not lxd_plan.guest_api
                         else f"{guest_socket.path} as the site likes (the profile allows it)")
    observed.actual = str(guest_socket)
    assert guest_socket.error is None, f"{instance.label}: {guest_socket}"
    assert lxd_plan.guest_api or not guest_socket.offered, \
        f"{instance.label}: any process inside reaches the server: {guest_socket}, although the profile forbids it"


def test_lxd_raw_idmap(check, instance, subordinate_ids, observed):
    entries = instance.raw_idmap
    observed.values = {"instance": instance.label}
    observed.expected = "every raw.idmap host range in root's /etc/subuid and /etc/subgid, outside its own range"
    observed.actual = instance.config.get("raw.idmap", "").strip().replace("\n", "; ") or "no raw.idmap"
    if not entries:
        return
    missing, inside = [], []
    own = [(m.get("Isuid"), m.get("Isgid"), range(m["Hostid"], m["Hostid"] + m["Maprange"])) for m in instance.own_idmap]
    for kind, host_ids, _ in entries:
        for id_kind, file_kind in (("uid", "u"), ("gid", "g")):
            if kind not in (id_kind, "both"):
                continue
            if not any(r.owner == "root" and r.covers(host_ids.start, len(host_ids)) for r in subordinate_ids[file_kind]):
                missing.append(f"root:{host_ids.start}:{len(host_ids)} in /etc/sub{file_kind}id")
            for is_uid, is_gid, mapped in own:
                if (is_uid if id_kind == "uid" else is_gid) and host_ids.start in mapped and not (
                        mapped.start == host_ids.start and len(mapped) == len(host_ids)):
                    inside.append(f"{id_kind} {host_ids.start}-{host_ids.stop - 1} inside its own {mapped.start}-{mapped.stop - 1}")
    observed.values["lines"] = " and ".join(dict.fromkeys(missing)) or "-"
    assert not missing, f"{instance.label}'s raw.idmap needs " + ", ".join(dict.fromkeys(missing)) + ": its next start fails"
    assert not inside, f"{instance.label}'s raw.idmap maps " + "; ".join(inside)
