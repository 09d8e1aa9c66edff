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

from conftest import ROOT, UNIFIED_VIEW
from hostsnapshot import HostSnapshot

from lab import COPIES
from lxc_compliance.readers.cgroup_dialect import HostDialect, limit_lines
from lxc_compliance.readers.cgroups import Cgroups

# One seed 000 host for the module: one worker builds it once. It holds the host shared (but
# for two tests): run after the tests that hold it alone (tests/conftest.py).
pytestmark = [pytest.mark.shares_host, pytest.mark.xdist_group("seed-fleet")]


def _audit(suite, folder: Path, seed_fleet, extra: str = "") -> dict[str, dict]:
    return _audited(suite, folder, seed_fleet, extra)[0]


def _audited(suite, folder: Path, seed_fleet, extra: str = "", select: str = "fleet", prefix: tuple = ()):
    """(check id -> result, the results document) of the event's audit, run behind PREFIX."""
    network, user, _, _ = seed_fleet
    folder.mkdir(parents=True)
    profile = folder / "event.yaml"
    profile.write_text(
        f"extends: {ROOT / 'profiles' / 'workshop.yaml'}\n"
        f"host: {{user: {user.name}}}\n"
        f"network:\n  bridge: {network.bridge}\n  subnet: {network.subnet}\n"
        f"containers:\n  gold: {user.gold.name}\n{extra}")
    result = suite.run(f"--profile={profile}", "-m", select, timeout=120, prefix=prefix)
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-2000:]
    document = suite.results("event")
    suite.report_dir.rename(folder / "reports")
    return {c["id"]: c for c in document["checks"]}, document


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
        "limits written in the cgroup dialect this host ignores": (
            _edited(config("pc5"), _in_the_ignored_dialect), ["fleet.memory_limit.pc5", "fleet.memsw_limit.pc5"]),
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
        "an extra mount entry": (_edited(config("pc3"), lambda text: text + MOUNT_ENTRY), []),
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


HOST_DIALECT = HostDialect(Cgroups.live().layout)
MOUNT_ENTRY = "lxc.mount.entry = tmpfs run/scratch tmpfs size=64m,create=dir 0 0\n"


def _in_the_dialect(dialect: str):
    """A change that rewrites a config's 512M / 1G limits in DIALECT ('lxc.cgroup2':
    lxc.cgroup2.memory.max = 512M, lxc.cgroup2.memory.swap.max = 512M)."""
    def change(text: str) -> str:
        kept = [line for line in text.splitlines() if not line.startswith(("lxc.cgroup.memory", "lxc.cgroup2.memory"))]
        assert len(kept) == len(text.splitlines()) - 2, "the copy's config carries both limits"
        return "\n".join(kept + list(limit_lines(dialect, 512 << 20, 1 << 30).values())) + "\n"
    return change


# On this hybrid machine: lxc.cgroup2.memory.max = 512M, lxc.cgroup2.memory.swap.max = 512M.
_in_the_ignored_dialect = _in_the_dialect(HOST_DIALECT.ignored)


@contextlib.contextmanager
def _both(first, second):
    with first, second:
        yield


@pytest.mark.changes_host  # /etc/lxc/lxc-usernet edited, the whole host compared
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
        if fault == "an extra mount entry":
            assert drifting == {"fleet.drift.pc3": f"pc3 differs from the fleet: lxc.mount.entry has in addition "
                                                   f"'{MOUNT_ENTRY.split(' = ', 1)[1].strip()}' (5 of 6 have the other lines only)"}
        if fault == "a legacy lxc.network key":
            assert "lxc.network.type" in checks["fleet.config_loads.pc4"]["message"]
            assert checks["fleet.memory_limit.pc4"]["blocked_by"] == "fleet.config_loads.pc4"
    assert found == wanted
    # A site that wants a uniform fleet: the same drift fails.
    network, user, _, _ = seed_fleet
    with _edited(user.gold.lxc.path / "pc4" / "config", lambda text: text + "lxc.net.0.mtu = 1400\n"):
        checks = _audit(suite, tmp_path / "uniform", seed_fleet, "fleet: {pattern: 'pc*', uniform: true}\n")
    assert _failed(checks) == ["fleet.drift.pc4"]


def test_a_running_copy_whose_limits_lxc_ignores_fails_with_its_cgroup_as_evidence(seed_fleet, tmp_path, suite):
    """The false pass this guards against, for real: a copy whose limits are written in the
    dialect the host ignores starts, LXC logs its warning, its cgroup holds no limit, and the
    audit fails both limits naming the line that applies here and the cgroup's own value."""
    network, user, _, _ = seed_fleet
    lxc = user.gold.lxc
    log = Path(lxc.path).parent / "pc5-start.log"
    with _edited(lxc.path / "pc5" / "config", _in_the_ignored_dialect):
        try:
            lxc.as_owner("lxc-start", "-n", "pc5", "-l", "WARN", "-o", str(log), timeout=120)
            checks = _audit(suite, tmp_path / "running", seed_fleet)
            cgroup_file = "memory.limit_in_bytes" if HOST_DIALECT.applied == "lxc.cgroup" else "memory.max"
            raw = lxc.query("lxc-cgroup", "-n", "pc5", cgroup_file).stdout.strip()
        finally:
            lxc.as_owner("lxc-stop", "-n", "pc5", "-k", timeout=60, check=False)
    assert HOST_DIALECT.warning in log.read_text(), log.read_text()[-2000:]
    assert raw in ("max", "9223372036854771712"), f"LXC applied the ignored dialect's limit: {cgroup_file} = {raw}"
    assert _failed(checks) == ["fleet.memory_limit.pc5", "fleet.memsw_limit.pc5"], {i: checks[i]["message"] for i in _failed(checks)}
    memory = checks["fleet.memory_limit.pc5"]
    applied_line = limit_lines(HOST_DIALECT.applied, 512 << 20, 1 << 30)["memory"]
    assert f"(here: {applied_line})" in memory["message"], memory["message"]
    assert HOST_DIALECT.warning in memory["message"]
    assert f"running: {cgroup_file} = {raw} (no limit)" in memory["actual"], memory["actual"]
    assert applied_line in memory["remediation"]
    assert checks["fleet.memory_limit.pc4"]["outcome"] == "passed"


def test_a_unified_host_without_its_memory_controller_ignores_the_seed_limits(seed_fleet, tmp_path, suite):
    """The workshop recipe's lxc.cgroup.memory.* limits on a unified host (this machine's cgroups
    seen as one, for real): the host cannot enforce memory limits (the root cause, first), and
    every copy's v1 limits are ignored, each naming the line that would apply there."""
    network, user, copies, _ = seed_fleet
    checks, document = _audited(suite, tmp_path / "unified", seed_fleet, select="fleet or host", prefix=UNIFIED_VIEW)
    assert checks["host.memory_controller"]["outcome"] == "failed"
    assert "offers hugetlb, not memory" in checks["host.memory_controller"]["message"]
    assert checks["host.swap_accounting"]["blocked_by"] == "host.memory_controller"
    assert checks["host.cgroup_layout"]["outcome"] == "passed"
    for name in copies:
        memory = checks[f"fleet.memory_limit.{name}"]
        assert memory["outcome"] == "failed", memory
        assert "(here: lxc.cgroup2.memory.max = 512M)" in memory["message"], memory["message"]
        assert "Ignoring legacy cgroup limits on pure cgroup2 system" in memory["message"]
        assert "(here: lxc.cgroup2.memory.swap.max = 512M)" in checks[f"fleet.memsw_limit.{name}"]["message"]
    causes = [cause["id"] for cause in document["root_causes"]]
    assert causes[0] == "host.memory_controller", causes
    # Written as a unified host applies them, the limits pass there.
    with contextlib.ExitStack() as stack:
        for name in copies:
            stack.enter_context(_edited(user.gold.lxc.path / name / "config", _in_the_dialect("lxc.cgroup2")))
        checks, _ = _audited(suite, tmp_path / "unified-fixed", seed_fleet, select="fleet or host", prefix=UNIFIED_VIEW)
    assert {checks[f"fleet.{kind}.{name}"]["outcome"] for kind in ("memory_limit", "memsw_limit") for name in copies} == {"passed"}


def test_start_fleet_starts_the_stopped_ones_and_leaves_the_rest_as_found(seed_fleet, lab_gold, tmp_path, suite):
    """--start-fleet with one copy already running, and one copy whose sshd is masked: every
    other copy comes up and takes a login; the one without sshd fails its own check;
    afterwards exactly the copies that ran before run."""
    import subprocess

    network, user, copies, _ = seed_fleet
    password = lab_gold.prepare("student", None, "512M", "1G")
    lxcpath = user.gold.lxc.path
    masked = lxcpath / "pc6/rootfs/etc/systemd/system/ssh.service"
    user.gold.lxc.as_owner("lxc-start", "-n", "pc1", timeout=60)
    try:
        masked.symlink_to("/dev/null")  # pc6 boots without sshd (the fleet fixture checks it is put back)
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
        masked.unlink(missing_ok=True)
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


@pytest.mark.changes_host  # --cleanup sweeps every killed run's leftovers
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
    file they read comes through that connection, read ahead in the Host's own cache
    (tests/unit/test_ssh_host_trees.py counts its commands), nothing left in /tmp."""
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
    assert not list(Path("/tmp").glob(f"lxc-compliance-{document['run_id'][:8]}*")), "a folder of the run is left"
