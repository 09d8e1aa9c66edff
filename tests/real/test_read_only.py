"""Audits change nothing: the kernel, host and workshop profiles (and the lab
main job) leave kernel settings, links and addresses, /etc, the LXC paths, every
container that was there, dnsmasq's leases, crontabs and the host's daemons as
they found them (the runs' own samples come and go)."""

from __future__ import annotations

import pytest

from hoststate import HostState
from hostsnapshot import HostSnapshot

# It holds the host alone: the host-state group, run first (tests/conftest.py orders them).
pytestmark = [pytest.mark.changes_host, pytest.mark.xdist_group("host-state")]


@pytest.fixture(autouse=True)
def quiet_host():
    """No other test changes the host while one compares it before and after."""
    with HostState() as state:
        yield state


@pytest.mark.parametrize("profile", ["kernel", "host"])
def test_audit_changes_nothing(profile, suite):
    before = HostSnapshot.take()
    result = suite.run(f"--profile={profile}")
    assert result.returncode in (0, 1), result.stdout[-2000:]
    assert suite.results(profile)["checks"], "the run checked nothing"
    assert before.differences(HostSnapshot.take()) == []


def test_workshop_audit_with_samples_changes_nothing_but_its_samples(workshop_host, tmp_path, suite):
    network, user, password = workshop_host
    profile = tmp_path / "event.yaml"
    profile.write_text(
        "extends: workshop\n"
        f"network:\n  bridge: {network.bridge}\n  subnet: {network.subnet}\n"
        f"containers:\n  gold: {user.gold.name}\n  user: {user.name}\n  samples: 2\n"
        "  ssh: {user: student, password_env: LXCCT_PASSWORD}\n")
    before = HostSnapshot.take()
    result = suite.run(f"--profile={profile}", env={"LXCCT_PASSWORD": password}, timeout=600)
    checks = {c["id"]: c for c in suite.results("event")["checks"]}
    assert checks["containers.ssh_login.s02"]["outcome"] == "passed", result.stdout[-3000:]
    assert checks["network.dhcp_exchange"]["outcome"] == "passed"
    assert before.differences(HostSnapshot.take()) == []


def test_a_lab_run_leaves_the_host_as_found(lab_gold, suite):
    """The main job builds and removes its own network, samples and files: the
    host's containers, leases, files and daemons are as before."""
    before = HostSnapshot.take()
    result = suite.run("--profile=lab", "--samples=2", timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert before.differences(HostSnapshot.take()) == []


def test_the_snapshot_sees_a_change(quiet_host):
    """A test that cannot fail is a defect: the comparison notices what a careless run would do."""
    before = HostSnapshot.take()
    quiet_host.sysctl("fs.inotify.max_user_instances", int(before.sysctls["fs.inotify.max_user_instances"]) + 1)
    quiet_host.write("/etc/lxc-compliance-snapshot-test", "changed\n")
    differences = before.differences(HostSnapshot.take())
    assert any("fs.inotify.max_user_instances" in d for d in differences)
    assert any("/etc/lxc-compliance-snapshot-test" in d for d in differences)
