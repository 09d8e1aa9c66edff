"""Sample containers for real: the lab main job end to end, and seed 000's
classic mistakes injected into a copy of the gold image, each failing its
check. After every test no container, veth, overlay mount or lease of the run
remains."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import ROOT
from fixtures.containers import GoldImage, destroy
from hoststate import HostState
from leftovers import run_leftovers

LAB_GOLD = "lxcc-gold-bookworm"
PASSWORD_ENV = "LXCC_TEST_PASSWORD"
PASSWORD = "seed-000-" + uuid.uuid4().hex[:12]

pytestmark = pytest.mark.xdist_group("host-state")


@pytest.fixture(autouse=True)
def state():
    """Containers take host-wide resources (inotify instances, DHCP): one test at a
    time, and what a test changes on the host is undone after it."""
    with HostState() as state:
        yield state


@pytest.fixture(scope="session")
def lab_gold() -> GoldImage:
    gold = GoldImage(LAB_GOLD)
    gold.ensure()
    return gold


@pytest.fixture
def test_gold(lab_gold):
    """A full copy of the lab's gold image, prepared as the lab prepares it, to break."""
    gold = GoldImage(f"lxcct-gold-{uuid.uuid4().hex[:6]}")
    try:
        subprocess.run(["lxc-copy", "-n", lab_gold.name, "-N", gold.name], check=True, capture_output=True, timeout=300)
        gold.prepare("student", PASSWORD, "512M", "1G")
        yield gold
    finally:
        destroy(gold.name)


def _profile(tmp_path: Path, gold: str, samples: int = 2, extra: str = "") -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        f"extends: {ROOT / 'profiles' / 'lab.yaml'}\ncategories: [containers]\n"
        f"containers:\n  gold: {gold}\n  build_gold: false\n  samples: {samples}\n  boot_timeout_s: 20\n"
        f"  ssh: {{user: student, password_env: {PASSWORD_ENV}}}\n" + extra
    )
    return path


def _run(suite, profile: Path, *args: str) -> tuple[dict[str, dict], dict]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PASSWORD_ENV, PASSWORD)
        result = suite.run(f"--profile={profile}", *args, timeout=600)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    document = suite.results(profile.stem)
    assert PASSWORD not in result.stdout + result.stderr
    assert PASSWORD not in (suite.report_dir / f"{profile.stem}.json").read_text()
    assert run_leftovers(document["run_id"]) == []
    return {c["id"]: c for c in document["checks"]}, document


def _failed(checks: dict[str, dict]) -> set[str]:
    """Failed check ids, without their sample suffix."""
    return {i.rsplit(".s", 1)[0] if ".s" in i else i for i, c in checks.items() if c["outcome"] == "failed"}


def test_lab_main_job_passes_end_to_end(lab_gold, suite):
    """The README's main command: kernel, network and 10 real samples with DHCP and ssh."""
    result = suite.run("--profile=lab", timeout=900)
    assert result.returncode == 0, result.stdout[-3000:]
    document = suite.results("lab")
    checks = {c["id"]: c for c in document["checks"]}
    assert [i for i, c in checks.items() if c["outcome"] == "failed"] == []
    boot = [c for i, c in checks.items() if i.startswith("containers.boot_time.s")]
    assert len(boot) == 10
    for check in boot:
        assert set(check["metrics"]) == {"started_s", "running_s", "address_s", "sshd_s", "login_s"}
        assert check["metrics"]["login_s"] >= check["metrics"]["sshd_s"] >= check["metrics"]["address_s"]
    assert run_leftovers(document["run_id"]) == []


def test_memory_limit_that_differs_from_the_profile(test_gold, tmp_path, suite):
    config = test_gold.config_path
    config.write_text(config.read_text().replace("limit_in_bytes = 512M", "limit_in_bytes = 256M"))
    checks, _ = _run(suite, _profile(tmp_path, test_gold.name))
    assert _failed(checks) == {"containers.memory_limit"}
    assert "256M" in checks["containers.memory_limit.s01"]["actual"]


def test_gold_image_without_openssh_server(test_gold, tmp_path, suite):
    subprocess.run(["chroot", str(test_gold.rootfs), "dpkg", "--purge", "openssh-server"], check=True, capture_output=True)
    checks, _ = _run(suite, _profile(tmp_path, test_gold.name))
    assert _failed(checks) == {"containers.ssh_login", "containers.boot_time"}
    assert "did not answer" in checks["containers.ssh_login.s01"]["message"]
    assert checks["containers.boot_time.s01"]["evidence"], "a slow boot's evidence names the slowest units"


def test_stale_lease_and_shared_machine_id(test_gold, tmp_path, suite):
    (test_gold.rootfs / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (test_gold.rootfs / "var/lib/dhcp/dhclient.eth0.leases").write_text(
        'lease {\n  interface "eth0";\n  fixed-address 10.0.3.99;\n}\n')
    checks, _ = _run(suite, _profile(tmp_path, test_gold.name))
    failed = _failed(checks)
    assert {"containers.gold_clean", "containers.machine_id"} <= failed
    assert failed <= {"containers.gold_clean", "containers.machine_id", "containers.boot_time", "containers.ipv4"}
    assert "0123456789abcdef" in checks["containers.machine_id.s01"]["actual"]
    assert "dhclient.eth0.leases" in checks["containers.gold_clean"]["message"] or "machine-id" in checks["containers.gold_clean"]["message"]


def test_two_containers_given_one_mac(lab_gold, tmp_path, suite):
    profile = _profile(tmp_path, lab_gold.name, extra='  mac_prefix: "52:56:00:00:00:01"\n')
    profile.write_text(profile.read_text().replace("build_gold: false", "build_gold: true"))
    checks, _ = _run(suite, profile)
    assert "containers.mac" in _failed(checks)
    assert "also the MAC of" in checks["containers.mac.s01"]["message"]


def test_dnsmasq_stopped_before_the_samples_start(lab_gold, tmp_path, suite):
    from fixtures.lab_network import LabNetwork, stop_process

    with LabNetwork(uuid.uuid4().hex[:10]) as network:
        stop_process(network.dnsmasq_pid)
        profile = _profile(tmp_path, lab_gold.name)
        profile.write_text(profile.read_text().replace("build_gold: false", "build_gold: true")
                           .replace("boot_timeout_s: 20", "boot_timeout_s: 8")
                           + f"network:\n  lab: false\n  bridge: {network.bridge}\n  subnet: {network.subnet}\n")
        started = time.monotonic()
        checks, _ = _run(suite, profile)
        elapsed = time.monotonic() - started
    assert "containers.ipv4" in _failed(checks)
    assert "got no IPv4 address within 8 s" in checks["containers.ipv4.s01"]["message"]
    assert elapsed < 60


def test_inotify_limit_is_named_before_any_sample_starts(state, lab_gold, tmp_path, suite):
    state.sysctl("fs.inotify.max_user_instances", 20)
    checks, _ = _run(suite, _profile(tmp_path, lab_gold.name, samples=5))
    assert _failed(checks) == {"containers.capacity"}
    assert "fs.inotify.max_user_instances=20" in checks["containers.capacity"]["message"]
    skipped = [c for i, c in checks.items() if i.startswith("containers.running.")]
    assert len(skipped) == 5 and all("see containers.capacity" in c["message"] for c in skipped)


def test_cleanup_removes_what_a_killed_run_left_and_nothing_else(lab_gold, tmp_path):
    """SIGKILL a lab run mid-fleet: nothing can tear down. `--cleanup` removes its
    containers, bridge, dnsmasq and files, and leaves a live run's alone."""
    import signal
    import sys

    from fixtures import registry
    from fixtures.lab_network import LabNetwork

    with LabNetwork(uuid.uuid4().hex[:10]) as live:  # another run, alive throughout
        process = subprocess.Popen(
            [sys.executable, "-m", "pytest", "--profile=lab", "-m", "containers", "--samples=3",
             f"--report-dir={tmp_path / 'reports'}"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(Path("/var/lib/lxc").glob("lxcc-*-03/config")):
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        killed = {item.run for item in registry.find() if item.kind == "container"}
        assert len(killed) == 1, "the killed run should have left its containers behind"
        run = killed.pop()
        assert run_leftovers(run), "nothing to clean up: the test did not kill the run mid-fleet"

        result = subprocess.run([sys.executable, "-m", "pytest", "--cleanup"], cwd=ROOT, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"/var/lib/lxc/lxcc-{run}-01" in result.stdout
        assert run_leftovers(run) == []
        assert live.bridge not in result.stdout and run_leftovers(live.run_id) != []
        assert not any(item.run == run for item in registry.find())


def test_two_lab_runs_at_once_both_pass(lab_gold, tmp_path):
    """Run ids keep names, subnets and dnsmasq instances apart."""
    import json
    import sys

    runs = []
    for name in ("first", "second"):
        reports = tmp_path / name
        runs.append((reports, subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "--profile=lab", "-m", "network or containers", "--samples=3",
             f"--report-dir={reports}"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    documents = []
    for reports, process in runs:
        output = process.communicate(timeout=600)[0]
        assert process.returncode == 0, output[-3000:]
        documents.append(json.loads((reports / "lab.json").read_text()))
    first, second = documents
    assert first["run_id"] != second["run_id"]
    leases = [next(c for c in d["checks"] if c["id"] == "network.dhcp_exchange")["actual"] for d in documents]
    assert leases[0].split("/")[0].rsplit(".", 1)[0] != leases[1].split("/")[0].rsplit(".", 1)[0], leases
    for document in documents:
        assert run_leftovers(document["run_id"]) == []
