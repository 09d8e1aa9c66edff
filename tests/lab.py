"""Fixtures for tests that need real containers: the lab's cached gold image,
and seed 000's workshop host in small."""

from __future__ import annotations

import uuid

import pytest

from lxc_compliance.lab.gold import GoldImage

LAB_GOLD = "lxcc-gold-bookworm"


@pytest.fixture(scope="session")
def lab_gold() -> GoldImage:
    gold = GoldImage(LAB_GOLD)
    gold.ensure()
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
