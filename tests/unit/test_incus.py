"""An Incus server read as Incus: its words in every title and remediation, its own
keys (security.guestapi, incus-admin), its warnings of every status, and the API
exposure that LXD and Incus share. The server's answers are recorded from Incus
6.0's REST API (GET /1.0, /1.0/warnings, /1.0/instances?recursion=2)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

import checks.test_lxd as lxd_checks
import checks.test_security as security_checks
from lxc_compliance.model.catalog import Catalog
from lxc_compliance.model.profiles import load
from lxc_compliance.plugin.outcomes import name_server
from lxc_compliance.plugin.run import Observation
from lxc_compliance.readers.lxd import SERVERS, LxdInstance, LxdServer
from recorded_host import RecordedHost

# The unit tier (./lxcc test --unit): no root, no container, no network.
pytestmark = pytest.mark.unit

CATALOG = Catalog.load()
# GET /1.0 of Incus 6.0.4 (incus-base from bookworm-backports), the parts the checks read.
INCUS_INFO = {"config": {"core.https_address": "8443"}, "environment": {
    "server": "incus", "server_version": "6.0.4", "driver": "lxc", "firewall": "nftables",
    "kernel_features": {}, "lxc_features": {}}}
WARNINGS = [
    {"status": "new", "severity": "low", "type": "Couldn't find the CGroup network priority controller",
     "last_message": "per-instance network priority will be ignored", "count": 1,
     "first_seen_at": "2026-12-01T08:00:00Z", "last_seen_at": "2026-12-01T08:00:00Z"},
    {"status": "acknowledged", "severity": "low", "type": "AppArmor support has been disabled",
     "last_message": "Disabled because of lack of kernel support", "count": 3,
     "first_seen_at": "2026-11-20T08:00:00Z", "last_seen_at": "2026-12-01T08:00:00Z"},
    {"status": "resolved", "severity": "moderate", "type": "Instance autostart failure",
     "last_message": "Failed to start instance \"c1\"", "count": 1,
     "first_seen_at": "2026-11-21T08:00:00Z", "last_seen_at": "2026-11-21T08:00:00Z"},
]


def _server(info=INCUS_INFO, instances=()) -> LxdServer:
    return LxdServer(Path("/var/lib/incus/unix.socket"), info, WARNINGS, {}, {}, {}, {}, list(instances))


def _instance(name: str, **config) -> LxdInstance:
    return LxdInstance({"name": name, "project": "default", "expanded_config": config, "expanded_devices": {},
                        "status": "Running"})


def _plan(**values):
    return SimpleNamespace(**{"guest_api": True, "admins": (), "network": "incusbr0", "https_everywhere": False,
                              **values})


def test_the_server_that_answers_gives_its_words():
    assert _server().kind == "incus" and _server().words["cli"] == "incus"
    assert _server({"environment": {"server": "lxd"}}).words == SERVERS["lxd"]
    assert _server().features == {"kernel": {}, "lxc": {}}, "Incus 7.0's empty feature lists are read as empty"


def test_incus_words_leave_no_lxd_command_in_the_lxd_checks():
    run = SimpleNamespace(words_of=lambda label="local": SERVERS["incus"])
    lxd_checks_ids = [c for c in CATALOG.checks if c.category == "lxd" or c.id.split(".")[1].startswith("lxd_")]
    assert len(lxd_checks_ids) > 20
    for check in lxd_checks_ids:
        for text in (check.title, check.why, check.remediation):
            said = name_server(text, run)
            assert not re.search(r"\blxc (config|network|profile|storage|warning)\b", said), (check.id, said)
            assert "LXD" not in said.replace("the LXD notes", ""), (check.id, said)
            assert not re.search(r"\{(server|cli|admin_group|guest_api|guest_socket|nft_table)\}", said), (check.id, said)
    remediation = name_server(CATALOG.by_id["lxd.warnings"].remediation, run)
    assert remediation == "Fix what each warning says, then acknowledge it: incus warning ack UUID (incus warning list shows them)."


def test_warnings_of_every_status_are_evidence_and_only_new_ones_count():
    server = _server()
    observed = Observation()
    with pytest.raises(AssertionError, match="1 open Incus warnings"):
        lxd_checks.test_warnings(CATALOG.by_id["lxd.warnings"], server, observed)
    lines = observed.evidence.splitlines()
    assert [line.split()[0] for line in lines] == ["new", "acknowledged", "resolved"]
    assert "first 2026-11-20T08:00:00Z, last 2026-12-01T08:00:00Z" in lines[1]


@pytest.mark.parametrize("address, fails", [("8443", True), (":8443", True), ("[::]:8443", True), ("0.0.0.0:8443", True),
                                            ("10.0.3.1:8443", False), ("[fd00::1]:8443", False), ("", False)])
def test_an_api_on_every_address_fails(address, fails):
    server = _server({**INCUS_INFO, "config": {"core.https_address": address}})
    check = CATALOG.by_id["lxd.https_address"]
    if fails:
        with pytest.raises(AssertionError, match="every address"):
            lxd_checks.test_https_address(check, server, _plan(), Observation())
    else:
        lxd_checks.test_https_address(check, server, _plan(), Observation())


def test_the_guest_api_is_incus_s_own_key():
    check = CATALOG.by_id["security.lxd_guest_api"]
    on, off = _instance("c1"), _instance("c2", **{"security.guestapi": "false"})
    lxd_only_off = _instance("c3", **{"security.devlxd": "false"})
    server = _server(instances=[on, off, lxd_only_off])
    security_checks.test_lxd_guest_api(check, on, server, _plan(), Observation())  # allowed by the profile
    with pytest.raises(AssertionError, match="c1 offers /dev/incus/sock"):
        security_checks.test_lxd_guest_api(check, on, server, _plan(guest_api=False), Observation())
    security_checks.test_lxd_guest_api(check, off, server, _plan(guest_api=False), Observation())
    with pytest.raises(AssertionError, match="security.guestapi is on"):
        security_checks.test_lxd_guest_api(check, lxd_only_off, server, _plan(guest_api=False), Observation())


def test_members_of_the_admin_group_the_profile_does_not_name_fail():
    host = RecordedHost({"/etc/group": "root:x:0:\nincus-admin:x:996:inst,alice\nlxd:x:995:\n",
                         "/etc/passwd": "root:x:0:0:root:/root:/bin/bash\nbob:x:1002:996::/home/bob:/bin/bash\n"})
    check = CATALOG.by_id["lxd.admin_group"]
    observed = Observation()
    with pytest.raises(AssertionError, match="alice, bob in incus-admin"):
        lxd_checks.test_admin_group(check, _server(), _plan(admins=("inst",)), host, observed)
    assert observed.actual == "incus-admin: alice, bob, inst"
    lxd_checks.test_admin_group(check, _server(), _plan(admins=("inst", "alice", "bob")), host, Observation())
    lxd_checks.test_admin_group(check, _server({"environment": {"server": "lxd"}}), _plan(), host, Observation())


def test_the_incus_profile_expects_incus():
    profile = load("incus", CATALOG)
    assert profile.setting("lxd.server") == "incus" and profile.setting("lxd.network") == "incusbr0"
    assert "lxd" in profile.categories and load("lxd", CATALOG).setting("lxd.network") is None


def test_the_guest_socket_found_inside_fails_only_where_the_profile_forbids_it():
    from lxc_compliance.readers.guest_api import GuestSocket

    check = CATALOG.by_id["security.lxd_guest_socket"]
    answering = GuestSocket("/dev/incus/sock", True, "0666", True, "HTTP/1.0 200 OK", "1.0")
    silent = GuestSocket("/dev/incus/sock", True, "0666", False, "HTTP/1.0 403 Forbidden")
    observed = Observation()
    security_checks.test_lxd_guest_socket(check, _instance("c1"), answering, _plan(), observed)
    assert observed.actual == "/dev/incus/sock present, mode 0666, answers GET /1.0 (API 1.0)"
    with pytest.raises(AssertionError, match="c1: any process inside reaches the server"):
        security_checks.test_lxd_guest_socket(check, _instance("c1"), answering, _plan(guest_api=False), Observation())
    for harmless in (silent, GuestSocket("/dev/incus/sock")):
        security_checks.test_lxd_guest_socket(check, _instance("c1"), harmless, _plan(guest_api=False), Observation())
    with pytest.raises(AssertionError, match="not read"):  # a probe that could not tell is not a pass
        security_checks.test_lxd_guest_socket(check, _instance("c1"), GuestSocket("/dev/incus/sock", error="timeout"),
                                              _plan(), Observation())


def test_the_incus_lab_is_the_lxd_lab_with_incus():
    lab, lxd_lab = load("incus-lab", CATALOG), load("lxd-lab", CATALOG)
    assert lab.setting("lxd.server") == "incus" and lab.setting("lxd.lab") is True
    assert lab.categories == lxd_lab.categories and lab.setting("containers.engine") == "lxd"


@pytest.mark.parametrize("config, tokens, fails", [
    ({}, [{"class": "token", "metadata": {"expiresAt": "0001-01-01T00:00:00Z"}}], None),  # the unix socket only
    ({"core.https_address": "10.0.3.1:8443"}, [], None),
    ({"core.https_address": "10.0.3.1:8443", "core.trust_ca_certificates": "true"}, [], "every certificate its CA signed"),
    ({"core.https_address": "10.0.3.1:8443"}, [{"class": "token", "metadata": {"expiresAt": "0001-01-01T00:00:00Z"}}],
     "1 join tokens that never expire"),
    ({"core.https_address": "10.0.3.1:8443", "core.remote_token_expiry": "1H"},
     [{"class": "token", "metadata": {"expiresAt": "2026-12-02T12:00:00Z", "clientName": "laptop"}}], None),
], ids=["socket-only", "listed-clients", "ca-trusted", "standing-token", "expiring-token"])
def test_trust_over_the_network_is_only_the_listed_clients(config, tokens, fails):
    server = LxdServer(Path("/var/lib/incus/unix.socket"), {**INCUS_INFO, "config": config}, [], {}, {}, {}, {}, [],
                       certificates=[{"name": "admin", "type": "client", "restricted": False}], tokens=tokens)
    check, observed = CATALOG.by_id["lxd.trust"], Observation()
    if fails:
        with pytest.raises(AssertionError, match=fails):
            lxd_checks.test_trust(check, server, observed)
    else:
        lxd_checks.test_trust(check, server, observed)
    assert "trusted: admin (client, unrestricted)" in observed.evidence
