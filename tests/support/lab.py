"""Fixtures for tests that need real containers: the lab's cached gold image,
and seed 000's workshop host in small."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from lxc_compliance.lab.gold import GoldImage

LAB_GOLD = "lxcc-gold-bookworm"


@pytest.fixture(scope="session")
def lab_gold() -> GoldImage:
    """The lab's gold, built if missing and prepared as a lab run leaves it (a login user,
    the lab's limits, machine-id and leases emptied): on a fresh machine the first test to
    use it must not read a gold no run has prepared yet."""
    gold = GoldImage(LAB_GOLD)
    gold.ensure()
    gold.prepare("student", None, "512M", "1G")
    return gold


@pytest.fixture
def workshop_host(lab_gold):
    """Seed 000's host in small: an unprivileged user with subordinate ids, a veth
    grant on a bridge served by dnsmasq, pam_cgfs delegation and a gold container
    in the user's lxcpath (built as the lab builds it)."""
    from lxc_compliance.lab.network import LabNetwork
    from lxc_compliance.lab.user import LabUser

    password = lab_gold.prepare("student", None, "512M", "1G")
    run_id = uuid.uuid4().hex
    with LabNetwork(run_id) as network, LabUser(run_id, network.bridge, 4, lab_gold, memory="512M", memsw="1G") as user:
        yield network, user, password


def own_host_keys(rootfs: Path) -> None:
    """New SSH host keys in ROOTFS (ssh-keygen -A under it), owned as its /etc/ssh is."""
    import os
    import subprocess

    ssh = rootfs / "etc/ssh"
    for old in ssh.glob("ssh_host_*"):
        old.unlink()
    subprocess.run(["ssh-keygen", "-A", "-f", str(rootfs)], check=True, capture_output=True, timeout=60)
    owner = ssh.stat()
    for key in ssh.glob("ssh_host_*"):
        os.chown(key, owner.st_uid, owner.st_gid)


def build_fleet(network, user, count: int) -> list[str]:
    """Seed 000's fleet in small, in USER's lxcpath: the gold given the static
    address .100 of the bridge's subnet, then COUNT full copies pc1..pcN
    (lxc-copy as the user), each with a random 52:56 MAC appended to its config,
    lxc.start.auto = 1, its address set to .100+i as the seed's sed sets it, its
    name as hostname, and SSH host keys of its own (seed 000's copies keep the
    gold's: fleet.ssh_host_keys' finding, tested as a fault). Removed with the user."""

    from lxc_compliance.lab.samples import random_mac

    base = network.subnet.network_address + 100
    gold = user.gold
    interfaces = gold.rootfs / "etc/network/interfaces"
    interfaces.write_text(
        "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet static\n"
        f"    address {base}/{network.subnet.prefixlen}\n    gateway {network.address}\n")
    names = []
    for index in range(1, count + 1):
        name = f"pc{index}"
        gold.lxc.as_owner("lxc-copy", "-n", gold.name, "-N", name, timeout=300)  # su - inst -c lxc-copy
        folder = gold.lxc.path / name
        with open(folder / "config", "a") as config:
            config.write(f"lxc.net.0.hwaddr = {random_mac('52:56')}\nlxc.start.auto = 1\n")
        guest = folder / "rootfs/etc"
        text = (guest / "network/interfaces").read_text()
        (guest / "network/interfaces").write_text(text.replace(f"{base}/", f"{base + index}/"))
        (guest / "hostname").write_text(f"{name}\n")
        own_host_keys(folder / "rootfs")
        names.append(name)
    return names


COPIES = 6

# What a test of the fleet may change in a copy and must put back: its config and the
# guest files the faults edit (the fixture restores and names whatever was left changed).
FLEET_FILES = ("config", "rootfs/etc/network/interfaces", "rootfs/etc/hostname",
               "rootfs/etc/systemd/networkd.conf", "rootfs/etc/systemd/system/ssh.service",
               "rootfs/etc/ssh/ssh_host_ed25519_key.pub", "rootfs/etc/ssh/ssh_host_rsa_key.pub")


def _fleet_files(lxcpath: Path, copies: list[str]) -> dict[Path, bytes | None]:
    return {lxcpath / name / relative: _read_or_none(lxcpath / name / relative)
            for name in copies for relative in FLEET_FILES}


def _read_or_none(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() or path.is_symlink() else None


@pytest.fixture(scope="module")
def built_seed_fleet(lab_gold):
    """(network, user, copies): seed 000's host with COPIES copies, built once for the
    module that asks for it (its tests share an xdist group: one worker), the host held
    shared while it exists: a test that needs the host alone runs before or after it."""
    from hoststate import HostState
    from lxc_compliance.lab.network import LabNetwork
    from lxc_compliance.lab.user import LabUser

    with HostState(shared=True):
        lab_gold.prepare("student", None, "512M", "1G")
        run_id = uuid.uuid4().hex
        with LabNetwork(run_id, dhcp_hosts=(20, 80)) as network, \
                LabUser(run_id, network.bridge, COPIES + 2, lab_gold, memory="512M", memsw="1G") as user:
            yield network, user, build_fleet(network, user, COPIES)


@pytest.fixture
def seed_fleet(built_seed_fleet, request):
    """(network, user, copies, host state): the module's seed 000 host, held alone for a
    test marked changes_host; the copies' files are as built before and after each test."""
    from hoststate import HostState

    network, user, copies = built_seed_fleet
    built = _fleet_files(user.gold.lxc.path, copies)
    with HostState.for_test(request.node) as state:
        yield network, user, copies, state
        left = {path: data for path, data in built.items() if _read_or_none(path) != data}
        for path, data in left.items():
            if data is None:
                path.unlink()
            else:
                path.write_bytes(data)
        assert not left, f"the test left fleet files changed (now put back): {sorted(map(str, left))}"
