"""The event's own containers, audited as defined: seed 000's host in small with
six unprivileged full copies of the user's gold (a random 52:56 MAC appended to
each config, the address .100+i written into each guest as the seed's sed
writes it). Without a fault the fleet passes; each fault alone fails exactly its
check for exactly the containers it concerns, and nothing else; the audit
changes nothing."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import pytest

from conftest import ROOT
from hostsnapshot import HostSnapshot

from lab import COPIES


def _audit(suite, folder: Path, seed_fleet, extra: str = "") -> dict[str, dict]:
    network, user, _, _ = seed_fleet
    folder.mkdir(parents=True)
    profile = folder / "event.yaml"
    profile.write_text(
        f"extends: {ROOT / 'profiles' / 'workshop.yaml'}\n"
        f"host: {{user: {user.name}}}\n"
        f"network:\n  bridge: {network.bridge}\n  subnet: {network.subnet}\n"
        f"containers:\n  gold: {user.gold.name}\n{extra}")
    result = suite.run(f"--profile={profile}", "-m", "fleet", timeout=120)
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-2000:]
    document = suite.results("event")
    suite.report_dir.rename(folder / "reports")
    return {c["id"]: c for c in document["checks"]}


def _failed(checks: dict[str, dict]) -> list[str]:
    return sorted(i for i, c in checks.items() if c["outcome"] in ("failed", "error"))


@contextlib.contextmanager
def _edited(path: Path, change):
    """PATH with CHANGE(text) written into it, put back afterwards."""
    original = path.read_text()
    path.write_text(change(original))
    try:
        yield
    finally:
        path.write_text(original)


def _faults(seed_fleet) -> dict:
    """Each fault: (the change, the failures it must give)."""
    network, user, copies, _ = seed_fleet
    lxcpath = user.gold.lxc.path
    config = lambda name: lxcpath / name / "config"  # noqa: E731
    guest = lambda name, relative: lxcpath / name / "rootfs" / relative  # noqa: E731
    base = network.subnet.network_address + 100
    mac_of = lambda name: re.search(r"^lxc\.net\.0\.hwaddr = (\S+)$", config(name).read_text(), re.M)[1]  # noqa: E731

    def address(name, new):
        return _edited(guest(name, "etc/network/interfaces"), lambda text: re.sub(r"address \S+/", f"address {new}/", text))

    usernet = Path("/etc/lxc/lxc-usernet")
    return {
        "duplicate MAC": (_edited(config("pc3"), lambda text: text.replace(mac_of("pc3"), mac_of("pc2"))),
                          ["fleet.mac.pc2", "fleet.mac.pc3"]),
        "duplicate address": (address("pc4", base + 5), ["fleet.address.pc4", "fleet.address.pc5"]),
        "address inside the DHCP range": (address("pc2", network.subnet.network_address + 50), ["fleet.address.pc2"]),
        "two copies still on the gold's address": (_both(address("pc5", base), address("pc6", base)),
                                                    ["fleet.address.pc5", "fleet.address.pc6"]),
        "lxc.start.auto missing": (_edited(config("pc2"), lambda text: text.replace("lxc.start.auto = 1\n", "")),
                                   ["fleet.autostart.pc2"]),
        "256M memory limit": (_edited(config("pc3"), lambda text: text + "lxc.cgroup.memory.limit_in_bytes = 256M\n"),
                              ["fleet.memory_limit.pc3"]),
        "a legacy lxc.network key": (_edited(config("pc4"), lambda text: text + "lxc.network.type = veth\n"),
                                     ["fleet.config_loads.pc4"]),
        "a hostname twice": (_edited(guest("pc6", "etc/hostname"), lambda text: "pc5\n"),
                             ["fleet.hostname.pc5", "fleet.hostname.pc6"]),
        "an extra config line": (_edited(config("pc4"), lambda text: text + "lxc.net.0.mtu = 1400\n"), []),
        "one host key on two copies": (
            _edited(guest("pc2", "etc/ssh/ssh_host_ed25519_key.pub"),
                    lambda text: guest("pc1", "etc/ssh/ssh_host_ed25519_key.pub").read_text()),
            ["fleet.ssh_host_keys.pc1", "fleet.ssh_host_keys.pc2"]),
        "a copy still presenting the gold's keys": (
            _edited(guest("pc3", "etc/ssh/ssh_host_rsa_key.pub"),
                    lambda text: (user.gold.rootfs / "etc/ssh/ssh_host_rsa_key.pub").read_text()),
            ["fleet.ssh_host_keys.pc3"]),
        "one DUID fixed in two copies": (
            _both(*(_edited(guest(name, "etc/systemd/networkd.conf"),
                            lambda text: text + "\n[DHCPv4]\nDUIDType=vendor\nDUIDRawData=00:00:ab:11:f9:2a:c2:77:29:f9\n")
                    for name in ("pc5", "pc6"))),
            ["fleet.dhcp_identity.pc5", "fleet.dhcp_identity.pc6"]),
        "more copies than the lxc-usernet quota": (
            _edited(usernet, lambda text: text.replace(f"{user.name} veth {network.bridge} {COPIES + 2}",
                                                       f"{user.name} veth {network.bridge} {COPIES - 1}")),
            ["fleet.usernet_quota"]),
    }


@contextlib.contextmanager
def _both(first, second):
    with first, second:
        yield


def test_each_fleet_fault_fails_its_check_for_its_container(seed_fleet, tmp_path, suite):
    before = HostSnapshot.take()
    checks = _audit(suite, tmp_path / "clean", seed_fleet)
    assert _failed(checks) == [], {i: checks[i]["message"] for i in _failed(checks)}
    assert len([i for i in checks if i.startswith("fleet.mac.")]) == COPIES, "every copy is audited, the gold is not"
    assert checks["fleet.address.pc3"]["outcome"] == "passed"
    assert {c["outcome"] for i, c in checks.items() if i.startswith("fleet.drift.")} == {"passed"}
    assert before.differences(HostSnapshot.take()) == [], "the audit writes nothing"
    found, wanted = {}, {}
    for fault, (injected, failures) in _faults(seed_fleet).items():
        with injected:
            checks = _audit(suite, tmp_path / re.sub(r"\W+", "-", fault), seed_fleet)
        found[fault], wanted[fault] = _failed(checks), failures
        drifting = {i: c["message"] for i, c in checks.items() if i.startswith("fleet.drift.") and c["outcome"] != "passed"}
        if fault == "an extra config line":
            assert drifting == {"fleet.drift.pc4": "pc4 differs from the fleet: lxc.net.0.mtu = 1400 (5 of 6 have none)"}
            assert checks["fleet.drift.pc4"]["outcome"] == "warned"  # the workshop does not ask for uniformity
        if fault == "a legacy lxc.network key":
            assert "lxc.network.type" in checks["fleet.config_loads.pc4"]["message"]
            assert checks["fleet.memory_limit.pc4"]["blocked_by"] == "fleet.config_loads.pc4"
    assert found == wanted
    # A site that wants a uniform fleet: the same drift fails.
    network, user, _, _ = seed_fleet
    with _edited(user.gold.lxc.path / "pc4" / "config", lambda text: text + "lxc.net.0.mtu = 1400\n"):
        checks = _audit(suite, tmp_path / "uniform", seed_fleet, "fleet: {pattern: 'pc*', uniform: true}\n")
    assert _failed(checks) == ["fleet.drift.pc4"]


def test_start_fleet_starts_the_stopped_ones_and_leaves_the_rest_as_found(seed_fleet, lab_gold, tmp_path, suite):
    """--start-fleet with one copy already running, and one copy without sshd: every
    other copy comes up and takes a login; the one without sshd fails its own check;
    afterwards exactly the copies that ran before run."""
    import subprocess

    network, user, copies, _ = seed_fleet
    password = lab_gold.prepare("student", None, "512M", "1G")
    lxcpath = user.gold.lxc.path
    subprocess.run(["chroot", str(lxcpath / "pc6/rootfs"), "dpkg", "--purge", "openssh-server"], check=True,
                   capture_output=True, timeout=120)
    user.gold.lxc.as_owner("lxc-start", "-n", "pc1", timeout=60)
    try:
        running_before = _running(lxcpath, copies)
        assert running_before == ["pc1"]
        folders_before = {name: sorted(p.name for p in (lxcpath / name).iterdir()) for name in copies}
        folder = tmp_path / "start"
        folder.mkdir()
        profile = folder / "event.yaml"
        profile.write_text(
            f"extends: {ROOT / 'profiles' / 'workshop.yaml'}\nhost: {{user: {user.name}}}\n"
            f"network:\n  bridge: {network.bridge}\n  subnet: {network.subnet}\n"
            f"containers:\n  gold: {user.gold.name}\n  ssh: {{user: student, password_env: LXCCT_PASSWORD}}\n"
            "fleet:\n  start_timeout_s: 60\n")
        result = suite.run(f"--profile={profile}", "-m", "fleet or security", "--start-fleet", env={"LXCCT_PASSWORD": password},
                           timeout=600)
        checks = {c["id"]: c for c in suite.results("event")["checks"]}
        assert _running(lxcpath, copies) == running_before
        assert {name: sorted(p.name for p in (lxcpath / name).iterdir()) for name in copies} == folders_before, \
            "nothing written beside the fleet's containers"
    finally:
        subprocess.run(["lxc-stop", "-P", str(lxcpath), "-n", "pc1", "-k"], capture_output=True, timeout=60)
    assert _failed(checks) == ["fleet.started.pc6"], result.stdout[-3000:]
    assert "sshd" in checks["fleet.started.pc6"]["message"]
    assert checks["fleet.started.pc1"]["outcome"] == "skipped"  # running before: only read
    for name in ("pc2", "pc3", "pc4", "pc5"):
        assert checks[f"fleet.started.{name}"]["metrics"]["login_s"] > 0
    assert "fleet: 4/5 up, 1 failed" in result.stdout
    # Probed inside each container the run started (pc6 too: up, without sshd), never in pc1.
    assert checks["security.denied_clock.pc6"]["outcome"] == "passed"
    assert "user namespace" in checks["security.denied_clock.pc2"]["actual"]
    assert checks["security.denied_device.pc1"]["outcome"] == "skipped"
    assert password not in result.stdout


def _running(lxcpath: Path, names: list[str]) -> list[str]:
    import subprocess

    return [name for name in names if subprocess.run(["lxc-info", "-P", str(lxcpath), "-n", name, "-s", "-H"],
                                                       capture_output=True, text=True).stdout.strip() == "RUNNING"]


def test_a_killed_start_fleet_is_put_back_by_cleanup(seed_fleet, lab_gold, tmp_path):
    """SIGKILL a --start-fleet run once it has started containers: nothing of it can
    tear down; `--cleanup` stops exactly the containers it started."""
    import os
    import signal
    import subprocess
    import sys
    import time

    network, user, copies, _ = seed_fleet
    password = lab_gold.prepare("student", None, "512M", "1G")
    lxcpath = user.gold.lxc.path
    profile = tmp_path / "event.yaml"
    profile.write_text(
        f"extends: {ROOT / 'profiles' / 'workshop.yaml'}\nhost: {{user: {user.name}}}\n"
        f"network:\n  bridge: {network.bridge}\n  subnet: {network.subnet}\n"
        f"containers:\n  gold: {user.gold.name}\n  ssh: {{user: student, password_env: LXCCT_PASSWORD}}\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", f"--profile={profile}", "-m", "fleet", "--start-fleet",
         f"--report-dir={tmp_path / 'reports'}"], cwd=ROOT, env={**os.environ, "LXCCT_PASSWORD": password},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_running(lxcpath, copies)) < 2:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)
    assert _running(lxcpath, copies), "the run was killed before it started anything"
    records = {p.name: p.read_text() for p in Path("/run/lxc-compliance").glob("*.fleet.json")}
    cleaned = subprocess.run([sys.executable, "-m", "pytest", "--cleanup"], cwd=ROOT, capture_output=True, text=True,
                             timeout=300)
    assert "removed fleet" in cleaned.stdout, cleaned.stdout
    assert _running(lxcpath, copies) == [], (cleaned.stdout + cleaned.stderr, records)


def test_a_fleet_audited_over_ssh_reads_as_the_audit_on_the_host(seed_fleet, lab_gold, tmp_path, suite):
    """The fleet and security audits of a host reached over ssh (this machine, through an
    sshd of the test's own on loopback) find what the audit run on the host itself finds:
    the same checks, outcomes and findings, one fault (a MAC twice) included; every
    file they read comes through that connection (a mirror in the run's own folder,
    removed afterwards)."""
    from loopback_sshd import loopback_sshd

    network, user, _, _ = seed_fleet
    config = lambda name: user.gold.lxc.path / name / "config"  # noqa: E731
    mac = re.search(r"^lxc\.net\.0\.hwaddr = (\S+)$", config("pc2").read_text(), re.M)[1]
    folder = tmp_path / "audits"
    folder.mkdir()
    profile = folder / "event.yaml"
    profile.write_text(f"extends: {ROOT / 'profiles' / 'workshop.yaml'}\nhost: {{user: {user.name}}}\n"
                       f"network:\n  bridge: {network.bridge}\n  subnet: {network.subnet}\n"
                       f"containers:\n  gold: {user.gold.name}\n")
    findings = {}
    with loopback_sshd(lab_gold.rootfs, tmp_path / "sshd") as (spec, ssh_config), \
            _edited(config("pc3"), lambda text: re.sub(r"^lxc\.net\.0\.hwaddr = .*$", f"lxc.net.0.hwaddr = {mac}",
                                                       text, flags=re.M)):
        for where, args in (("here", []), ("over ssh", [f"--hosts={spec}", f"--ssh-config={ssh_config}"])):
            result = suite.run(f"--profile={profile}", "-m", "fleet or security", "--samples=0",
                               f"--report-dir={folder / where}", *args, timeout=300)
            document = json.loads((folder / where / "event.json").read_text())
            findings[where] = {c["id"]: (c["outcome"], c["actual"], c.get("message", "")) for c in document["checks"]}
            assert findings[where], result.stdout[-3000:]
    assert findings["over ssh"] == findings["here"]
    assert {i for i, c in findings["here"].items() if c[0] == "failed"} == {"fleet.mac.pc2", "fleet.mac.pc3"}
    assert len([i for i in findings["here"] if i.startswith("security.seccomp.")]) == COPIES
    assert not list(Path("/tmp").glob(f"lxc-compliance-{document['run_id'][:8]}*")), "the mirror is removed"
