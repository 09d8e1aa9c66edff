"""The network checks against real bridges, dnsmasq processes and DHCP exchanges.

A seed-000-style network (a bridge and a dnsmasq serving it, on a private
subnet of this run) is built per test; faults are injected one at a time and
each must fail its check, with evidence, within its time bound. After every
test nothing of it may remain: no namespace, veth, bridge or dnsmasq.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
from pyroute2 import IPRoute, netns

from conftest import ROOT
from lxc_compliance.lab.network import LabNetwork, Probe, stop_process
from hoststate import HostState
from leftovers import leftovers

NETWORK_CHECKS_TIMEOUT_S = 3
# DHCP sockets and DHCP servers are host-wide facts: one test's stray server is
# seen by every other test's checks (and a wildcard dnsmasq cannot even start
# beside another bridge's), so these tests run one at a time, whichever worker
# or process they are in: each holds the host-wide test lock.
# It holds the host alone: the host-state group, run first (tests/conftest.py orders them).
pytestmark = [pytest.mark.changes_host, pytest.mark.xdist_group("host-state")]


@pytest.fixture(autouse=True)
def host_lock():
    with HostState():
        yield


@pytest.fixture
def seed_network(tmp_path):
    """A bridge with a dnsmasq serving it, as seed 000 sets up br0 (on a private subnet)."""
    run_id = uuid.uuid4().hex[:10]
    lab = LabNetwork(run_id, lease_time="12h")
    with lab:
        yield lab
    assert leftovers(run_id) == []


def _profile(tmp_path: Path, lab: LabNetwork, containers: int = 40, extra: str = "") -> Path:
    path = tmp_path / "net.yaml"
    path.write_text(
        f"extends: {ROOT / 'profiles' / 'kernel.yaml'}\ncategories: [network]\n"
        f"host:\n  containers: {containers}\n"
        f"network:\n  bridge: {lab.bridge}\n  subnet: {lab.subnet}\n  forward_delay: 0\n  stp: false\n"
        f"  dhcp: {{margin: 5, min_lease_time: 1h, timeout_s: {NETWORK_CHECKS_TIMEOUT_S}, second_server_window_s: 1}}\n"
        + extra
    )
    return path


def _run(suite, profile: Path) -> tuple[dict[str, dict], float]:
    started = time.monotonic()
    result = suite.run(f"--profile={profile}", timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return {c["id"]: c for c in suite.results("net")["checks"]}, elapsed


def _failed(checks: dict[str, dict]) -> set[str]:
    return {i for i, c in checks.items() if c["outcome"] == "failed"}


def test_lab_profile_passes_with_a_real_lease(suite):
    result = suite.run("--profile=lab", "-m", "network", timeout=120)
    assert result.returncode == 0, result.stdout
    document = suite.results("lab")
    checks = {c["id"]: c for c in document["checks"]}
    assert {i: c["outcome"] for i, c in checks.items() if c["outcome"] != "passed"} == {"network.checksum_fill": "warned"}
    exchange = checks["network.dhcp_exchange"]
    assert 0 < exchange["metrics"]["time_to_lease_s"] < NETWORK_CHECKS_TIMEOUT_S
    assert leftovers(document["run_id"]) == []


def test_seed_network_passes(seed_network, tmp_path, suite):
    checks, _ = _run(suite, _profile(tmp_path, seed_network))
    assert _failed(checks) == set()
    assert checks["network.dhcp_range"]["actual"].endswith("lease 12h) from command line")


def test_dnsmasq_killed(seed_network, tmp_path, suite):
    stop_process(seed_network.dnsmasq_pid)
    checks, elapsed = _run(suite, _profile(tmp_path, seed_network))
    # One fault, one failure: what needs a dnsmasq is not checked, and nothing waits for an offer.
    assert _failed(checks) == {"network.dnsmasq_serves_bridge"}
    assert f"no dnsmasq serves {seed_network.bridge}" in checks["network.dnsmasq_serves_bridge"]["message"]
    for blocked in ("network.dhcp_exchange", "network.dhcp_range", "network.dhcp_single_server"):
        assert checks[blocked]["outcome"] == "skipped"
        assert checks[blocked]["blocked_by"] == "network.dnsmasq_serves_bridge"
        assert checks[blocked]["message"] == "not checked: network.dnsmasq_serves_bridge failed"
    assert elapsed < NETWORK_CHECKS_TIMEOUT_S


def test_nothing_answers_within_the_bound(seed_network, tmp_path, suite):
    """dnsmasq runs and is configured for the bridge, but does not answer (stopped)."""
    os.kill(seed_network.dnsmasq_pid, signal.SIGSTOP)
    try:
        checks, elapsed = _run(suite, _profile(tmp_path, seed_network))
    finally:
        os.kill(seed_network.dnsmasq_pid, signal.SIGCONT)
    assert _failed(checks) == {"network.dhcp_exchange"}
    assert checks["network.dhcp_single_server"]["outcome"] == "skipped"
    assert elapsed < NETWORK_CHECKS_TIMEOUT_S + 10


def _restart_dnsmasq(lab: LabNetwork, replace: dict[str, str]) -> None:
    stop_process(lab.dnsmasq_pid)
    command = [replace.get(arg.split("=")[0], arg) if arg.split("=")[0] in replace else arg for arg in lab.dnsmasq_command()]
    command = [replace[a.split("=")[0]] if a.split("=")[0] in replace else a for a in command]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    lab._cleanup.callback(stop_process, process.pid)
    lab.dnsmasq_pid = process.pid
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and 67 not in {c.laddr.port for c in psutil.Process(process.pid).net_connections("udp4")}:
        time.sleep(0.02)


def test_range_outside_the_subnet(seed_network, tmp_path, suite):
    _restart_dnsmasq(seed_network, {"--dhcp-range": "--dhcp-range=192.168.254.10,192.168.254.100,1h"})
    checks, _ = _run(suite, _profile(tmp_path, seed_network))
    # dnsmasq cannot offer from a range that is not on the bridge, so no lease either.
    assert _failed(checks) == {"network.dhcp_range"}
    assert "no dhcp-range lies inside" in checks["network.dhcp_range"]["message"]
    assert checks["network.dhcp_exchange"]["blocked_by"] == "network.dhcp_range"


def test_range_smaller_than_the_fleet(seed_network, tmp_path, suite):
    first = seed_network.subnet.network_address
    _restart_dnsmasq(seed_network, {"--dhcp-range": f"--dhcp-range={first + 10},{first + 29},1h"})
    checks, _ = _run(suite, _profile(tmp_path, seed_network))
    assert _failed(checks) == {"network.dhcp_range"}
    assert "the range has 20 addresses; 45 needed" in checks["network.dhcp_range"]["message"]
    assert "45 addresses" in checks["network.dhcp_range"]["remediation"]


def test_bridge_set_down(seed_network, tmp_path, suite):
    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=seed_network.bridge)[0], state="down")
    checks, _ = _run(suite, _profile(tmp_path, seed_network))
    assert _failed(checks) == {"network.bridge_up"}
    assert checks["network.dhcp_exchange"]["outcome"] == "skipped"


def test_bridge_missing(tmp_path, suite):
    profile = tmp_path / "net.yaml"
    profile.write_text(f"extends: {ROOT / 'profiles' / 'kernel.yaml'}\ncategories: [network]\nnetwork:\n  bridge: lxcbnone0\n")
    checks, _ = _run(suite, profile)
    assert _failed(checks) == {"network.bridge_exists"}
    assert "Create it" in checks["network.bridge_exists"]["remediation"]
    assert checks["network.dnsmasq_serves_bridge"]["blocked_by"] == "network.bridge_exists"


def test_second_server_in_a_namespace_on_the_bridge(seed_network, tmp_path, suite):
    """A rogue DHCP server in a container-like namespace on the bridge."""
    with Probe(seed_network.bridge, seed_network.run_id, number=9) as rogue:
        rogue_address = str(seed_network.subnet.broadcast_address - 1)
        subprocess.run(["ip", "-n", rogue.namespace, "addr", "add", f"{rogue_address}/{seed_network.subnet.prefixlen}", "dev", "eth0"], check=True)
        first = seed_network.subnet.network_address
        process = subprocess.Popen(
            ["ip", "netns", "exec", rogue.namespace, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
             "--no-ping", f"--dhcp-range={first + 200},{first + 220},1h", f"--dhcp-leasefile={tmp_path / 'rogue.leases'}",
             f"--pid-file={tmp_path / 'rogue.pid'}", "--user=root", "--interface=eth0", "--bind-interfaces"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.3)
            checks, _ = _run(suite, _profile(tmp_path, seed_network))
        finally:
            process.terminate()
            process.wait(10)
    # The second server is the fault; the exchange it spoils is not checked.
    assert _failed(checks) == {"network.dhcp_single_server"}
    assert checks["network.dhcp_exchange"]["blocked_by"] == "network.dhcp_single_server"
    assert rogue_address in checks["network.dhcp_single_server"]["message"]
    assert rogue_address in checks["network.dhcp_single_server"]["remediation"]


def test_stray_server_bound_to_every_interface(seed_network, tmp_path, suite):
    """lxc-net's classic mistake (seed 000): a dnsmasq holding port 67 on every
    interface starts first, and the bridge's own dnsmasq can no longer bind."""
    stop_process(seed_network.dnsmasq_pid)
    stray = subprocess.Popen(
        ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--no-ping",
         "--dhcp-range=192.168.253.10,192.168.253.20,1h", f"--dhcp-leasefile={tmp_path / 'stray.leases'}",
         f"--pid-file={tmp_path / 'stray.pid'}", "--user=root"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and stray.poll() is None and 67 not in {
            c.laddr.port for c in psutil.Process(stray.pid).net_connections("udp4")
        }:
            time.sleep(0.02)
        assert stray.poll() is None, stray.stderr.read()
        ours = subprocess.run(seed_network.dnsmasq_command(), capture_output=True, text=True, timeout=10)
        assert "Address already in use" in ours.stderr  # what the organiser sees at the event
        checks, _ = _run(suite, _profile(tmp_path, seed_network))
    finally:
        stray.terminate()
        stray.wait(10)
        stray.stderr.close()
    assert _failed(checks) == {"network.dhcp_port_exclusive"}
    assert checks["network.dhcp_exchange"]["blocked_by"] == "network.dhcp_port_exclusive"
    message = checks["network.dhcp_port_exclusive"]["message"]
    assert "(all interfaces)" in message and "holds its DHCP port" in message
    assert "USE_LXC_BRIDGE" in checks["network.dhcp_port_exclusive"]["remediation"]


def test_stale_leases_eat_the_pool(seed_network, tmp_path, suite):
    stop_process(seed_network.dnsmasq_pid)
    first = seed_network.subnet.network_address
    expiry = int(time.time()) + 3600
    stale = "".join(f"{expiry} 52:56:00:00:00:{i:02x} {first + 10 + i} pc{i} *\n" for i in range(220))
    seed_network.leasefile.write_text(stale)
    _restart_dnsmasq(seed_network, {})
    checks, _ = _run(suite, _profile(tmp_path, seed_network))
    assert _failed(checks) == {"network.dhcp_pool_headroom"}
    assert "220 of 241 addresses leased" in checks["network.dhcp_pool_headroom"]["actual"]


def test_interrupt_during_the_dhcp_exchange_leaves_nothing(tmp_path):
    """Ctrl-C while the probe namespace exists: everything of the run is removed."""
    report_dir = tmp_path / "reports"
    profile = tmp_path / "slow.yaml"
    profile.write_text(f"extends: {ROOT / 'profiles' / 'lab.yaml'}\nnetwork:\n  dhcp: {{second_server_window_s: 20}}\n")
    # As from a terminal: SIGINT delivered (xdist workers and background jobs ignore it).
    process = subprocess.Popen([sys.executable, "-m", "pytest", f"--profile={profile}", "-m", "network", f"--report-dir={report_dir}"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    run_id = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and run_id is None:
        run_id = next((n.split("-", 1)[1][:8] for n in netns.listnetns() if n.startswith("lxcc-")), None)
        time.sleep(0.05)
    assert run_id, "the probe namespace never appeared"
    time.sleep(1.0)  # well inside the 20 s listening window
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode != 0
    assert b"KeyboardInterrupt" in output or b"Interrupted" in output
    assert leftovers(run_id) == []


def test_bridge_settings_and_lease_time_that_differ_from_the_profile(seed_network, tmp_path, suite):
    uplink = f"lxcu{seed_network.run_id[:8]}"
    extra = "  uplink: " + uplink + "\n  mtu: 9000\n"
    profile = _profile(tmp_path, seed_network, extra=extra)
    profile.write_text(profile.read_text().replace("forward_delay: 0", "forward_delay: 2").replace("stp: false", "stp: true")
                       .replace("min_lease_time: 1h", "min_lease_time: 1d"))
    checks, _ = _run(suite, profile)
    assert _failed(checks) == {"network.bridge_forward_delay", "network.bridge_stp", "network.bridge_mtu",
                               "network.bridge_uplink", "network.dhcp_lease_time"}
    assert "12h" in checks["network.dhcp_lease_time"]["actual"]
    # Now give the bridge what the profile asks for (a veth end stands in for the uplink NIC;
    # this kernel has no dummy links).
    with IPRoute() as ipr:
        bridge = ipr.link_lookup(ifname=seed_network.bridge)[0]
        seed_network._cleanup.callback(lambda: subprocess.run(["ip", "link", "del", uplink], capture_output=True))
        ipr.link("add", ifname=uplink, kind="veth", peer=f"{uplink}p", mtu=9000)
        ipr.link("set", index=ipr.link_lookup(ifname=uplink)[0], master=bridge, state="up")
        ipr.link("set", index=bridge, mtu=9000)
    subprocess.run(["ip", "link", "set", seed_network.bridge, "type", "bridge", "forward_delay", "200", "stp_state", "1"], check=True)
    checks, _ = _run(suite, profile)
    assert _failed(checks) == {"network.dhcp_lease_time"}


def test_checksum_fill_rule_is_found(seed_network, tmp_path, suite):
    rule = ["-t", "mangle", "-A", "POSTROUTING", "-o", seed_network.bridge, "-p", "udp", "--dport", "68",
            "-j", "CHECKSUM", "--checksum-fill"]
    had_mangle = subprocess.run(["nft", "list", "table", "ip", "mangle"], capture_output=True).returncode == 0
    checks, _ = _run(suite, _profile(tmp_path, seed_network))
    assert checks["network.checksum_fill"]["outcome"] == "warned"
    subprocess.run(["iptables", *rule], check=True)
    try:
        checks, _ = _run(suite, _profile(tmp_path, seed_network))
    finally:
        subprocess.run(["iptables", *[("-D" if a == "-A" else a) for a in rule]], check=True)
        if not had_mangle:  # iptables leaves the table it created behind
            subprocess.run(["nft", "delete", "table", "ip", "mangle"], check=True)
    assert checks["network.checksum_fill"]["outcome"] == "passed"
    assert "CHECKSUM" in checks["network.checksum_fill"]["actual"]


def test_the_ssh_readers_see_what_netlink_and_psutil_see(seed_network):
    """The one network reader on the ssh Host (the host's own `ip -j`, `ss`, /proc
    and dnsmasq's files), pointed at this machine through testinfra's local
    backend, reads the same bridge, dnsmasq, port-67 sockets and leases as on the
    local Host (netlink, sock_diag, psutil)."""
    import testinfra

    from lxc_compliance.readers.host_network import HostNetwork
    from lxc_compliance.readers.machine import THIS_HOST
    from lxc_compliance.readers.machine_ssh import SshHost

    here, there = HostNetwork(THIS_HOST), HostNetwork(SshHost(testinfra.get_host("local://")))
    ours, theirs = here.bridge(seed_network.bridge), there.bridge(seed_network.bridge)
    facts = ("exists", "kind", "up", "forward_delay", "stp", "mtu", "ports", "networks")
    assert {f: getattr(theirs, f) for f in facts} == {f: getattr(ours, f) for f in facts}
    assert theirs.networks and theirs.describe() == ours.describe()
    assert not there.bridge("lxcc-nolink0").exists

    pid = seed_network.dnsmasq_pid
    ours_dnsmasq = [(p.cmdline, p.config.options) for p in here.dnsmasq_processes() if p.pid == pid]
    theirs_dnsmasq = [(p.cmdline, p.config.options) for p in there.dnsmasq_processes() if p.pid == pid]
    assert theirs_dnsmasq == ours_dnsmasq and ours_dnsmasq[0][1]
    assert [s for s in there.dhcp_sockets() if s.pid == pid] == [s for s in here.dhcp_sockets() if s.pid == pid] != []
    leasefile = next(p for p in here.dnsmasq_processes() if p.pid == pid).config.leasefile
    Path(leasefile).write_text(f"{int(time.time()) + 600} 52:56:00:00:00:01 {seed_network.subnet.network_address + 20} "
                               "pc01 *\n")
    assert there.active_leases(leasefile, time.time()) == here.active_leases(leasefile, time.time()) != []
    assert there.checksum_fill_rules(seed_network.bridge) == here.checksum_fill_rules(seed_network.bridge)
