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
    assert host_apparmor, f"the kernel enforces no AppArmor, so {loaded.label}'s profile {profile} is not applied"


def test_apparmor_running(check, running_init, sample, host_apparmor, observed):
    label = running_init.apparmor_label
    observed.expected = "the init runs under an AppArmor profile, not unconfined"
    observed.actual = f"label {label}" if label else "no AppArmor label (the kernel has no AppArmor)"
    if not host_apparmor:
        observed.warn_only = "this kernel has no AppArmor: containers run unconfined whatever their config says"
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
    forbidden = security_policy.forbidden(confinement.privileged)
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
    forbidden = security_policy.forbidden(sample.privileged)
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
    assert finding.verdict in ("denied", "contained"), f"{container.name}: not refused: {finding.reason}"


def test_denied(check, sample, running_init, denial_probes, security_policy, dmesg_restrict, observed):
    _denied(check, sample, denial_probes(sample), security_policy, dmesg_restrict, observed)


def test_denied_started(check, member, started, denial_probes, security_policy, dmesg_restrict, observed):
    if started.init_pid is None:
        pytest.skip(f"not checked: fleet.started.{member.label} failed: {member.label} is not running")
    _denied(check, started, denial_probes(started), security_policy, dmesg_restrict, observed)
