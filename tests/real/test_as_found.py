"""An event host is left exactly as found: its dnsmasq's lease file, containers
the suite did not make, and every file, also when the run is a lab run given
someone else's container as its gold."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from hoststate import HostState
from hostsnapshot import HostSnapshot
from leftovers import run_leftovers
from paths import path_without

PASSWORD_ENV = "LXCCT_PASSWORD"

# It holds the host alone: the host-state group, run first (tests/conftest.py orders them).
pytestmark = [pytest.mark.changes_host, pytest.mark.xdist_group("host-state")]


@pytest.fixture(autouse=True)
def quiet_host():
    """No other test changes the host while one compares it before and after."""
    with HostState() as state:
        yield state


def _leases(network) -> list[tuple[str, str]]:
    from lxc_compliance.readers.dnsmasq import read_leases

    return sorted((lease.mac, lease.address) for lease in read_leases(network.leasefile))


def _workshop(tmp_path, network, user, password, suite, env=None):
    profile = tmp_path / "event.yaml"
    profile.write_text(
        "extends: workshop\n"
        f"network:\n  bridge: {network.bridge}\n  subnet: {network.subnet}\n"
        f"containers:\n  gold: {user.gold.name}\n  user: {user.name}\n  samples: 2\n"
        f"  ssh: {{user: student, password_env: {PASSWORD_ENV}}}\n")
    result = suite.run(f"--profile={profile}", "-m", "network or containers", timeout=600,
                       env={PASSWORD_ENV: password, **(env or {})})
    document = suite.results("event")
    assert run_leftovers(document["run_id"]) == []
    return {c["id"]: c for c in document["checks"]}, result


def test_a_workshop_run_gives_back_every_lease_it_took(workshop_host, tmp_path, suite):
    """The event's dnsmasq (one the run did not start) ends with the leases it had."""
    network, user, password = workshop_host
    before = _leases(network)
    checks, result = _workshop(tmp_path, network, user, password, suite)
    assert checks["containers.ssh_login.s02"]["outcome"] == "passed", result.stdout[-3000:]
    assert checks["containers.leases_released"]["outcome"] == "passed"
    assert _leases(network) == before


def test_a_lease_that_is_not_given_back_is_named(workshop_host, tmp_path, suite):
    """The companion: without dhcp_release the samples' leases stay, and the run says
    which address and MAC, in the check and at the end of its output."""
    network, user, password = workshop_host
    before = _leases(network)
    checks, result = _workshop(tmp_path, network, user, password, suite,
                               env={"PATH": path_without(("dhcp_release",), tmp_path)})
    leaked = sorted(set(_leases(network)) - set(before))
    assert len(leaked) == 2, "both samples' leases stay in the lease file"
    check = checks["containers.leases_released"]
    assert check["outcome"] == "failed"
    for mac, address in leaked:
        assert f"{address} {mac}" in check["message"]
        assert address in result.stdout
    assert "dnsmasq-utils" in check["message"]
    for mac, address in leaked:  # give them back, as the remediation says
        subprocess.run(["dhcp_release", network.bridge, address, mac], check=True)


def test_a_lab_run_given_a_foreign_gold_leaves_it_identical(lab_gold, tmp_path, suite):
    """--gold names a container the suite did not make: it prepares a copy of its own
    (named after it) and never writes into the container, nor beside it."""
    from lxc_compliance.lab.gold import GoldImage

    foreign = GoldImage(f"lxcct-foreign-{uuid.uuid4().hex[:6]}")
    copy = GoldImage(f"lxcc-gold-from-{foreign.name}")
    try:
        subprocess.run(["lxc-copy", "-n", lab_gold.name, "-N", foreign.name], check=True, capture_output=True, timeout=300)
        before = HostSnapshot.take()
        result = suite.run("--profile=lab", "-m", "containers", "--samples=1", f"--gold={foreign.name}", timeout=600)
        assert result.returncode == 0, result.stdout[-3000:]
        assert f"gold image {foreign.name} is not the suite's" in result.stdout
        assert copy.lxc.exists(copy.name)
        assert before.differences(HostSnapshot.take()) == []
    finally:
        foreign.remove()
        copy.remove()


def test_the_snapshot_sees_a_changed_container(lab_gold, quiet_host):
    """What the comparison is for: a password set in a container is a difference."""
    from lxc_compliance.lab.gold import GoldImage

    foreign = GoldImage(f"lxcct-foreign-{uuid.uuid4().hex[:6]}")
    try:
        subprocess.run(["lxc-copy", "-n", lab_gold.name, "-N", foreign.name], check=True, capture_output=True, timeout=300)
        before = HostSnapshot.take()
        subprocess.run(["chroot", str(foreign.rootfs), "chpasswd"], input="root:changed\n", text=True, check=True)
        (foreign.config_path.parent / ".lock").write_text("")
        differences = before.differences(HostSnapshot.take())
        assert any(foreign.name in d and "touchable" in d for d in differences)
        assert any(foreign.name in d and "folder" in d for d in differences)
    finally:
        foreign.remove()
