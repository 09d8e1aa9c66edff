"""LXD and Incus hosts, for real: a daemon started by the test (Debian's lxd, or
Incus's incusd; a folder of its own, a dir pool and a bridge without NAT), the
lab's gold imported as an image, three instances (one running, with a DHCP lease).
Every test runs once against each server: a clean host passes with the lxd or
incus profile as shipped; then one fault at a time fails exactly its check for
that instance, in that server's words."""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path

import pytest
import requests.adapters

from hoststate import HostState
from leftovers import run_leftovers
from lxc_compliance.lab.lxd import DAEMONS, LxdLab, nft_table_exists
from lxc_compliance.readers.lxd import SERVERS, LxdServer, ReadOnlyLxd, ReadOnlyRefused

# It holds the host shared: run after the tests that hold it alone (tests/conftest.py).
pytestmark = [pytest.mark.shares_host, pytest.mark.xdist_group("lxd")]

INSTANCES = ("t1", "t2", "t3")
MEMORY = "256MB"


@pytest.fixture(scope="module", params=["lxd", "incus"])
def lxd_host(request, lab_gold):
    """The daemon, the gold as image lxcc-gold, t1 (running) t2 t3 (stopped), limits.memory on each."""
    daemon = DAEMONS[request.param]
    if not Path(daemon.program).exists():
        pytest.skip(f"{daemon.program} is not installed (./lxcc test installs it)")
    had_table = nft_table_exists(daemon)
    # Shared: the daemon, its bridge and its nftables table are the lab's own; what needs the host alone waits.
    with HostState(shared=True), LxdLab(secrets.token_hex(4), kind=request.param) as lab:
        lab.import_image(lab_gold.rootfs, "lxcc-gold")
        for name in INSTANCES:
            lab.lxc("init", "lxcc-gold", name, "-c", f"limits.memory={MEMORY}", timeout=300)
        lab.lxc("start", "t1")
        server = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            server = LxdServer.read(lab.socket)
            if next(i for i in server.instances if i.name == "t1").addresses:
                break
            time.sleep(0.5)
        yield lab
    assert run_leftovers(lab.run_id) == []
    assert nft_table_exists(daemon) == had_table, f"the nftables table {daemon.nft_table} was left behind"


@pytest.fixture
def profile(tmp_path, lxd_host):
    path = tmp_path / "lxd-site.yaml"
    path.write_text(f"extends: {lxd_host.kind}\ncategories: [lxd, fleet, security]\nhost: {{containers: 3}}\n"
                    f"lxd: {{network: {lxd_host.bridge}, memory_limit: {MEMORY}}}\nfleet: {{pattern: 'nothing-lxc-*'}}\n"
                    "containers: {samples: 0}\n")  # the audit alone: samples have a test of their own
    return path


def _audit(suite, lxd_host, profile) -> dict[str, dict]:
    result = suite.run(f"--profile={profile}", env={lxd_host.daemon.folder_variable: str(lxd_host.folder)}, timeout=300)
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-2000:]
    return {c["id"]: c for c in suite.results(profile.stem)["checks"]}


def _failed(checks: dict[str, dict]) -> set[str]:
    return {i for i, c in checks.items() if c["outcome"] == "failed"}


def _fault(lxd_host, undo: list, *args: str, revert: tuple[str, ...]) -> None:
    undo.append(revert)
    lxd_host.lxc(*args)


@pytest.fixture
def undo(lxd_host):
    steps: list[tuple[str, ...]] = []
    yield steps
    for step in reversed(steps):
        lxd_host.lxc(*step, check=False)


def test_a_clean_lxd_host_passes(suite, lxd_host, profile):
    checks = _audit(suite, lxd_host, profile)
    assert _failed(checks) == set()
    for name in INSTANCES:
        assert checks[f"fleet.lxd_memory_limit.{name}"]["outcome"] == "passed"
        assert checks[f"security.lxd_privileged.{name}"]["outcome"] == "passed"
    assert checks["lxd.dhcp_exchange"]["outcome"] == "passed"
    assert lxd_host.bridge in checks["lxd.network"]["actual"]
    assert checks["fleet.lxd_address.t1"]["actual"].startswith(str(lxd_host.subnet)[:4])
    assert checks["lxd.warnings"]["outcome"] in ("passed", "warned")
    # In the words of the server that answered.
    words = SERVERS[lxd_host.kind]
    assert checks["lxd.daemon"]["title"] == f"The {words['server']} daemon answers on its socket"
    assert f"{words['cli']} config set t2 {words['guest_api']}=false" in checks["security.lxd_guest_api.t2"]["remediation"]
    # The guest API socket as a process inside the running instance finds it.
    inside = checks["security.lxd_guest_socket.t1"]
    assert inside["outcome"] == "passed" and inside["actual"].startswith(f"{words['guest_socket']} present, mode 0666, answers"), inside
    assert checks["security.lxd_guest_socket.t2"]["outcome"] == "skipped"


def test_a_forbidden_guest_api_fails_where_it_is_offered(suite, lxd_host, profile, undo):
    key = SERVERS[lxd_host.kind]["guest_api"]
    forbidding = profile.with_name("guest-api-off.yaml")
    forbidding.write_text(profile.read_text().replace("memory_limit:", "guest_api: false, memory_limit:"))
    checks = _audit(suite, lxd_host, forbidding)
    assert _failed(checks) == {f"security.lxd_guest_api.{name}" for name in INSTANCES} | {"security.lxd_guest_socket.t1"}
    assert "any process inside reaches the server" in checks["security.lxd_guest_socket.t1"]["message"]
    # Turned off everywhere: the server takes the running t1's socket away at once, and the probe sees it gone.
    for name in INSTANCES:
        _fault(lxd_host, undo, "config", "set", name, f"{key}=false", revert=("config", "unset", name, key))
    checks = _audit(suite, lxd_host, forbidding)
    assert _failed(checks) == set(), {i: checks[i]["message"] for i in _failed(checks)}
    assert checks["security.lxd_guest_socket.t1"]["actual"] == f"no {SERVERS[lxd_host.kind]['guest_socket']}"


@pytest.mark.parametrize("fault, revert, expected", [
    (("network", "set", "{bridge}", "ipv4.address", "none"), ("network", "set", "{bridge}", "ipv4.address", "{address}"),
     {"lxd.network_ipv4"}),
    (("network", "set", "{bridge}", "ipv4.dhcp.ranges", "{first}-{second}"), ("network", "unset", "{bridge}", "ipv4.dhcp.ranges"),
     {"lxd.dhcp_range"}),
    (("config", "set", "t3", "volatile.eth0.hwaddr", "{t2_mac}"), ("config", "set", "t3", "volatile.eth0.hwaddr", "{t3_mac}"),
     {"fleet.lxd_mac.t2", "fleet.lxd_mac.t3"}),
    (("config", "set", "t2", "security.privileged", "true"), ("config", "unset", "t2", "security.privileged"),
     {"security.lxd_privileged.t2"}),
    (("config", "set", "t2", "raw.idmap", "both 1000 1000"), ("config", "unset", "t2", "raw.idmap"),
     {"security.lxd_raw_idmap.t2"}),
    (("config", "device", "add", "t2", "hostetc", "disk", "source=/etc", "path=/mnt/etc"),
     ("config", "device", "remove", "t2", "hostetc"), {"security.lxd_disks.t2"}),
    (("config", "unset", "t3", "limits.memory"), ("config", "set", "t3", "limits.memory", MEMORY),
     {"fleet.lxd_memory_limit.t3"}),
    (("config", "set", "t3", "raw.lxc", "lxc.cap.drop ="), ("config", "unset", "t3", "raw.lxc"),
     {"security.lxd_raw.t3"}),
], ids=["no-ipv4", "small-dhcp-range", "shared-mac", "privileged", "raw-idmap", "host-etc", "no-memory-limit", "raw-lxc"])
def test_each_fault_fails_exactly_its_check(suite, lxd_host, profile, undo, fault, revert, expected):
    server = LxdServer.read(lxd_host.socket)
    macs = {i.name: i.hwaddrs.get("eth0", "") for i in server.instances}
    subnet = lxd_host.subnet
    values = {"bridge": lxd_host.bridge, "address": f"{subnet.network_address + 1}/{subnet.prefixlen}",
              "first": str(subnet.network_address + 10), "second": str(subnet.network_address + 11),
              "t2_mac": macs["t2"], "t3_mac": macs["t3"]}
    _fault(lxd_host, undo, *(part.format(**values) for part in fault), revert=tuple(part.format(**values) for part in revert))
    checks = _audit(suite, lxd_host, profile)
    assert _failed(checks) == expected, {i: checks[i]["message"] for i in _failed(checks)}
    if "lxd.network_ipv4" in expected:  # what needs an address is blocked, not failed
        assert checks["lxd.dhcp_exchange"]["outcome"] == "skipped"
        assert "lxd.network_ipv4" in checks["lxd.dhcp_exchange"]["message"]


@pytest.mark.parametrize("chain, rule", [
    ("type filter hook input priority 0; policy accept;", "iifname {bridge} udp dport 67 drop"),
    ("type filter hook forward priority 0; policy drop;", ""),
], ids=["ufw-like-dhcp-drop", "docker-like-forward-drop"])
def test_a_firewall_that_drops_on_the_bridge_is_one_failure(suite, lxd_host, profile, chain, rule):
    """A table of the test's own (removed after): only lxd.firewall fails; the exchange it breaks is blocked."""
    table = f"lxcct_{secrets.token_hex(3)}"
    try:
        subprocess.run(["nft", "add", "table", "inet", table], check=True, timeout=10)
        subprocess.run(["nft", "add", "chain", "inet", table, "c", "{ " + chain + " }"], check=True, timeout=10)
        if rule:
            subprocess.run(["nft", "add", "rule", "inet", table, "c", *rule.format(bridge=lxd_host.bridge).split()],
                           check=True, timeout=10)
        checks = _audit(suite, lxd_host, profile)
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table], capture_output=True, timeout=10)
    assert _failed(checks) == {"lxd.firewall"}, {i: checks[i]["message"] for i in _failed(checks)}
    assert f"inet {table} c" in checks["lxd.firewall"]["message"]
    assert checks["lxd.dhcp_exchange"]["outcome"] == "skipped"


def test_the_suite_only_reads_the_server(lxd_host, monkeypatch):
    methods = []
    send = requests.adapters.HTTPAdapter.send
    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send",
                        lambda self, request, *a, **k: methods.append(request.method) or send(self, request, *a, **k))
    server = LxdServer.read(lxd_host.socket)
    assert len(server.instances) == 3 and set(methods) == {"GET"}
    api = ReadOnlyLxd(lxd_host.socket)
    with pytest.raises(ReadOnlyRefused):
        api._client.instances.create({"name": "t9", "source": {"type": "none"}}, wait=True)
    assert set(methods) == {"GET"} and "t9" not in {i.name for i in LxdServer.read(lxd_host.socket).instances}


def test_the_samples_client_writes_only_into_its_own_project(lxd_host):
    from lxc_compliance.lab.lxd_samples import ProjectLxd

    before = _server_state(lxd_host.socket)
    lxd = ProjectLxd(lxd_host.socket, "lxcc-0badc0de")
    image = before["images"][0][0]
    refused = {
        "another project's deletion": lambda: lxd.unscoped.api.projects["default"].delete(params={"project": lxd.project}),
        "another project made": lambda: lxd.unscoped.api.projects.post(json={"name": "elsewhere"}),
        "an instance outside the project": lambda: lxd.unscoped.api.instances.post(json={"name": "x", "source": {"type": "none"}}),
        "a profile of the default project": lambda: lxd.unscoped.api.profiles["default"].put(json={"config": {}}),
        "an image that is not the suite's stale cache": lambda: lxd.unscoped.api.images[image].delete(
            params={"project": lxd.project}),
    }
    for what, request in refused.items():
        with pytest.raises(ReadOnlyRefused):
            request()
            pytest.fail(f"{what} was sent")
    assert _server_state(lxd_host.socket) == before


def _server_state(socket) -> dict:
    """What the as-found rule covers on an LXD server: instances, images, projects,
    profiles, networks and the bridge's leases (read with GET only)."""
    api = ReadOnlyLxd(socket)
    networks = {n["name"]: n["config"] for n in api.get("networks", recursion=1) if n.get("managed")}
    return {
        "instances": sorted((i["project"], i["name"], i["status"]) for i in api.get("instances", recursion=1, **{"all-projects": "true"})),
        "images": sorted((i["fingerprint"], tuple(sorted(a["name"] for a in i.get("aliases", [])))) for i in api.get("images", recursion=1)),
        "projects": sorted(p["name"] for p in api.get("projects", recursion=1)),
        "profiles": {p["name"]: (p["config"], p["devices"]) for p in api.get("profiles", recursion=1)},
        "networks": networks,
        "leases": {name: sorted((lease.get("hwaddr"), lease.get("address")) for lease in api.get(f"networks/{name}/leases") or []
                                if lease.get("type") == "dynamic") for name in networks},
    }


def test_samples_launched_through_lxd_leave_the_server_as_found(suite, lxd_host, tmp_path):
    profile = tmp_path / "lxd-samples.yaml"
    profile.write_text(
        f"extends: {lxd_host.kind}\ncategories: [lxd, containers]\nhost: {{containers: 3}}\n"
        f"lxd: {{network: {lxd_host.bridge}, memory_limit: {MEMORY}}}\n"
        "fleet: {pattern: 'nothing-lxc-*'}\n"  # root's LXC containers are other tests' (they run beside it)
        "containers: {engine: lxd, gold: lxcc-gold-bookworm, release: bookworm, build_gold: true, samples: 2,\n"
        "  memory_limit: 256M, mac_prefix: '52:56', boot_budget_s: 30, boot_timeout_s: 90, ssh: {user: student}}\n")
    before = _server_state(lxd_host.socket)
    checks = _audit(suite, lxd_host, profile)
    after = _server_state(lxd_host.socket)
    assert _failed(checks) == set(), {i: checks[i]["message"] for i in _failed(checks)}
    for index in ("s01", "s02"):
        assert checks[f"containers.ssh_login.{index}"]["outcome"] == "passed"
        assert checks[f"containers.memory_limit.{index}"]["actual"].startswith("268435456")
        assert set(checks[f"containers.boot_time.{index}"]["metrics"]) == {"started_s", "running_s", "address_s", "sshd_s", "login_s"}
    assert checks["containers.memory_enforced"]["outcome"] == "passed"
    assert checks["containers.leases_released"]["outcome"] == "passed"
    # The gold's image stays, cached under one alias (the only thing allowed to): nothing else changed.
    cached = [image for image in after["images"] if "lxcc-gold-bookworm" in image[1]]
    assert len(cached) == 1

    def without_cache(state):
        return {**state, "images": [image for image in state["images"] if "lxcc-gold-bookworm" not in image[1]]}

    assert without_cache(after) == without_cache(before)
    # The cache is an ordinary image of the default project: a plain launch of it works.
    try:
        lxd_host.lxc("init", "lxcc-gold-bookworm", "plain-from-cache")
    finally:
        lxd_host.lxc("delete", "--force", "plain-from-cache", check=False)
    run_id = suite.results(profile.stem)["run_id"]
    assert run_leftovers(run_id) == []


def test_a_killed_run_s_lxd_samples_are_removed_by_cleanup(lxd_host, tmp_path):
    """SIGKILL while samples are launched: `pytest --cleanup` deletes its instances and its project."""
    import os
    import signal
    import sys

    from conftest import ROOT

    profile = tmp_path / "lxd-killed.yaml"
    profile.write_text(
        f"extends: {lxd_host.kind}\ncategories: [containers]\nhost: {{containers: 3}}\nlxd: {{network: {lxd_host.bridge}}}\n"
        "fleet: {pattern: 'nothing-lxc-*'}\n"  # root's LXC containers are other tests' (they run beside it)
        "containers: {engine: lxd, gold: lxcc-gold-bookworm, release: bookworm, build_gold: true, samples: 2,\n"
        "  memory_limit: 256M, boot_timeout_s: 90, ssh: {user: student}}\n")
    before = _server_state(lxd_host.socket)
    env = {**os.environ, lxd_host.daemon.folder_variable: str(lxd_host.folder)}
    process = subprocess.Popen([sys.executable, "-m", "pytest", f"--profile={profile}", f"--report-dir={tmp_path}"],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    api = ReadOnlyLxd(lxd_host.socket)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        launched = [i for i in api.get("instances", recursion=1, **{"all-projects": "true"}) if i["project"].startswith("lxcc-")]
        if launched:
            break
        time.sleep(0.2)
    assert launched, "no sample instance appeared"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)
    run_id = launched[0]["project"].removeprefix("lxcc-")
    assert run_leftovers(run_id) != []
    done = subprocess.run([sys.executable, "-m", "pytest", "--cleanup"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert f"removed lxd_project {lxd_host.socket}:lxcc-{run_id}" in done.stdout, done.stdout
    assert run_leftovers(run_id) == []
    after = _server_state(lxd_host.socket)
    assert {**after, "images": before["images"]} == before


def test_the_server_of_another_host_is_read_over_ssh(suite, lxd_host, profile, lab_gold, tmp_path):
    """--hosts=ssh://...: the server is read through its socket forwarded over the same ssh connection
    (an sshd of the test's own on loopback serves this machine as another host), GET only, every result
    keyed by that host and in that server's words; the forward is gone afterwards."""
    import glob
    import os

    import psutil

    from loopback_sshd import loopback_sshd

    remote = profile.with_name("over-ssh.yaml")
    remote.write_text(profile.read_text().replace("memory_limit:", f"socket: {lxd_host.socket}, memory_limit:"))
    before = _server_state(lxd_host.socket)
    with loopback_sshd(lab_gold.rootfs, tmp_path / "sshd") as (spec, ssh_config):
        result = suite.run(f"--profile={remote}", f"--hosts={spec}", f"--ssh-config={ssh_config}", timeout=300,
                           env={"LXD_DIR": "/nonexistent", "INCUS_DIR": "/nonexistent"})
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-2000:]
    document = suite.results(remote.stem)
    checks = {c["id"]: c for c in document["checks"]}
    words = SERVERS[lxd_host.kind]
    daemon = checks["lxd.daemon"]
    assert daemon["outcome"] == "passed" and f"on {lxd_host.socket}" in daemon["actual"], daemon
    assert daemon["title"] == f"The {words['server']} daemon answers on its socket"
    assert {c["host"] for c in document["checks"]} == {document["hosts"][0]["hostname"]}
    assert {f"security.lxd_privileged.{name}" for name in INSTANCES} <= set(checks)
    assert checks["lxd.dhcp_exchange"]["outcome"] == "skipped" and "not run over ssh" in checks["lxd.dhcp_exchange"]["message"]
    assert checks["security.lxd_guest_socket.t1"]["outcome"] == "skipped"
    failed = {i: c["message"] for i, c in checks.items() if c["outcome"] == "failed"}
    assert failed == {}, failed
    assert _server_state(lxd_host.socket) == before
    run = document["run_id"]
    assert glob.glob(f"/tmp/lxc-compliance-{run}-forward-*") == []
    forwards = [p.info["cmdline"] for p in psutil.process_iter(["cmdline"])
                if any("forwarded.socket" in arg for arg in p.info["cmdline"] or [])]
    assert forwards == [] and os.path.exists(lxd_host.socket)


def test_a_stopped_daemon_is_one_failure_and_blocks_the_rest(suite, lxd_host, profile):
    """Last: the daemon is gone for the rest of the module (the fixture's teardown tolerates it)."""
    subprocess.run([*lxd_host.daemon.admin, "shutdown", "--timeout=30"], env=lxd_host.env, capture_output=True, timeout=60)
    started = time.monotonic()
    checks = _audit(suite, lxd_host, profile)
    assert time.monotonic() - started < 20
    assert _failed(checks) == {"lxd.daemon"}
    blocked = [c for i, c in checks.items() if i.startswith("lxd.") and i != "lxd.daemon"]
    assert blocked and all(c["outcome"] == "skipped" and "lxd.daemon" in c["message"] for c in blocked)
