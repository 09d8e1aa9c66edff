"""Kernel features LXC needs: lxc-checkconfig's items, and more.

Each function asserts one kind of item; ``checks/kernel.yaml`` says which items
(the ``check`` parameter) and how severe a miss is.
"""

import pytest

from lxc_compliance.readers.cgroups import cgroup_namespace_available
from lxc_compliance.readers.kernel import KernelFeature, NamespaceLimit, PrivilegedHelper, UserNamespaceTrial


def test_config_file(check, kernel_config, observed):
    observed.actual = kernel_config.problem or f"{kernel_config.path}: {len(kernel_config.options)} options"
    assert kernel_config.problem is None, f"{kernel_config.path}: {kernel_config.problem}"


def test_config_version(check, kernel_config, observed):
    observed.actual = kernel_config.header or "no version header"
    assert kernel_config.version is not None, "no kernel version in the config header: the latest kernel is assumed"


def test_config_option(check, kernel_config, modules, observed):
    feature = KernelFeature(check, kernel_config)
    observed.actual = feature.describe(modules)
    enabled = feature.enabled
    assert enabled, observed.actual


def test_namespace_limit(check, target, profile, observed):
    limit = NamespaceLimit.read(check.namespace_limit, target.host)
    minimum = profile.sysctl_minimum(check.namespace_limit) or profile.containers
    observed.expected = f"{check.namespace_limit} >= {minimum} (for {profile.containers} containers)"
    observed.actual = limit.describe()
    observed.values = {"minimum": minimum}
    if limit.value is None:
        pytest.skip(f"this kernel has no {limit.path}: it has no such namespace limit")
    assert limit.value >= minimum, (f"{check.namespace_limit} is {limit.value}; {profile.containers} "
                                    f"{'containers need' if profile.containers != 1 else 'container needs'} at least {minimum}")


def test_userns_switch(check, target, observed):
    found = target.host.read(check.sysctl_path)
    observed.expected = f"{check.sysctl_path} = {check.wanted}, or no such switch"
    observed.actual = f"{check.sysctl_path} = {found.decode().strip()}" if found is not None else f"no {check.sysctl_path}"
    observed.values = {"wanted": check.wanted}
    if found is None:
        pytest.skip(f"this kernel has no {check.sysctl_path}: nothing to allow")
    assert found.decode().strip() == check.wanted, f"{observed.actual}: unprivileged containers cannot start"


def test_user_namespace_made(check, target, observed):
    trial = UserNamespaceTrial.made_on(target.host)
    observed.expected = "a user namespace made by an ordinary user (unshare --user --map-root-user)"
    observed.actual = trial.describe()
    observed.evidence = trial.evidence
    assert trial.made, f"no user namespace: {trial.evidence or 'unshare failed'}"


def test_uidmap_helper(check, target, observed):
    helper = PrivilegedHelper.for_program(check.program, target.host)
    observed.actual = helper.describe()
    assert helper.path is not None, f"{check.program} is not installed"
    assert helper.privileged, f"{helper.path} is neither setuid-root nor carries the capability it needs"


def test_cgroup_namespace(check, target, observed):
    available = cgroup_namespace_available(target.host)
    observed.actual = "/proc/self/ns/cgroup " + ("exists" if available else "is missing")
    assert available, "the running kernel has no cgroup namespace"


def test_cgroup_v1_mounts(check, cgroups, observed):
    observed.actual = ", ".join(m.path for m in cgroups.v1) or "none"
    observed.evidence = "\n".join(f"{m.fstype} {m.path} {','.join(sorted(m.options))}" for m in cgroups.mounts)
    assert cgroups.v1 or cgroups.layout == "unified", "no cgroup v1 hierarchy and no cgroup2 at /sys/fs/cgroup"


def test_cgroup_v2_mounts(check, cgroups, observed):
    observed.actual = ", ".join(m.path for m in cgroups.v2) or "none"
    assert cgroups.v2, "no cgroup2 hierarchy is mounted"


def test_cgroup_v1_controller(check, cgroups, observed):
    mount = cgroups.v1_hierarchy(check.controller)
    observed.actual = f"{check.controller} at {mount.path}" if mount else f"no v1 hierarchy with {check.controller}"
    observed.evidence = "\n".join(f"{m.path}: {','.join(sorted(m.controllers))}" for m in cgroups.v1)
    assert mount is not None, observed.actual


def test_cgroup_clone_children(check, cgroups, observed):
    offering = cgroups.clone_children()
    observed.actual = f"in {len(offering)} of {len(cgroups.v1)} v1 hierarchies"
    assert offering, "no v1 hierarchy offers cgroup.clone_children"


def test_cgroup2_controller(check, cgroups, observed):
    available = cgroups.v2_controllers()
    observed.actual = "cgroup.controllers: " + (" ".join(sorted(available)) or "(empty)")
    assert check.controller in available, f"the {check.controller} controller is not available in cgroup2"
