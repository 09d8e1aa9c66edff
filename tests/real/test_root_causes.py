"""One fault, one failure, in seconds: faults injected one at a time into seed
000's host in small (an unprivileged user's gold container, a bridge served by
its own dnsmasq), each giving exactly one failed check outside the kernel and
host categories, with everything that depends on it skipped as blocked by it,
and no sample started to wait out its timeout."""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import ROOT
from hoststate import HostState
from leftovers import run_leftovers

PASSWORD_ENV = "LXCC_TEST_PASSWORD"
WITHIN_S = 20

# It holds the host alone: the host-state group, run first (tests/conftest.py orders them).
pytestmark = [pytest.mark.changes_host, pytest.mark.xdist_group("host-state")]


@pytest.fixture
def seed_host(lab_gold):
    """(network, user, password, host state) of seed 000's host in small, under the host-wide lock."""
    from lxc_compliance.lab.network import LabNetwork
    from lxc_compliance.lab.user import LabUser

    with HostState() as state:
        password = lab_gold.prepare("student", None, "512M", "1G")
        run_id = uuid.uuid4().hex
        with LabNetwork(run_id) as network, LabUser(run_id, network.bridge, 4, lab_gold, memory="512M",
                                                     memsw="1G") as user:
            yield network, user, password, state


@contextlib.contextmanager
def _dnsmasq_replaced(network, *changed: str):
    """The bridge's dnsmasq stopped (and, with CHANGED options, another started in
    its place); afterwards one with the network's own options serves again."""
    from lxc_compliance.lab.network import stop_process

    stop_process(network.dnsmasq_pid)
    replacement = None
    if changed:
        command = [arg for arg in network.dnsmasq_command()
                   if not any(arg.startswith(option.split("=")[0] + "=") for option in changed)] + list(changed)
        replacement = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(0.5)
    try:
        yield
    finally:
        if replacement is not None:
            replacement.terminate()
            replacement.wait(10)
        restored = subprocess.Popen(network.dnsmasq_command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, start_new_session=True)
        network._cleanup.callback(lambda: (restored.terminate(), restored.wait(10), restored.stderr.close()))
        network.dnsmasq_pid = restored.pid
        network._wait_until_serving(restored)


def _run(suite, folder: Path, seed_host, bridge: str | None = None) -> tuple[dict, float, str]:
    """A workshop run of the network and container checks (2 samples) on the seed host."""
    network, user, password, _ = seed_host
    folder.mkdir(parents=True)
    profile = folder / "event.yaml"
    profile.write_text(
        f"extends: {ROOT / 'profiles' / 'workshop.yaml'}\n"
        f"network:\n  bridge: {bridge or network.bridge}\n  subnet: {network.subnet}\n"
        f"containers:\n  gold: {user.gold.name}\n  user: {user.name}\n  samples: 2\n"
        f"  ssh: {{user: student, password_env: {PASSWORD_ENV}}}\n")
    started = time.monotonic()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PASSWORD_ENV, password)
        result = suite.run(f"--profile={profile}", "-m", "network or containers", timeout=600)
    elapsed = time.monotonic() - started
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-2000:]
    document = suite.results("event")
    suite.report_dir.rename(folder / "reports")  # each run's reports kept apart
    assert run_leftovers(document["run_id"]) == []
    return {c["id"]: c for c in document["checks"]}, elapsed, result.stdout


def _faults(seed_host):
    """Each fault as a context that injects it and puts things back, with the bridge to run on."""
    network, user, password, state = seed_host

    @contextlib.contextmanager
    def bridge_down():
        subprocess.run(["ip", "link", "set", network.bridge, "down"], check=True)
        try:
            yield network.bridge
        finally:
            subprocess.run(["ip", "link", "set", network.bridge, "up"], check=True)

    @contextlib.contextmanager
    def pam_line_missing():
        from lxc_compliance.lab.user import PAM_SESSION_FILES

        originals = {path: path.read_text() for path in PAM_SESSION_FILES if path.is_file()}
        try:
            for path, text in originals.items():
                path.write_text("".join(line for line in text.splitlines(keepends=True) if "pam_cgfs" not in line))
            yield network.bridge
        finally:
            for path, text in originals.items():
                path.write_text(text)

    @contextlib.contextmanager
    def capacity_short():
        path = Path("/proc/sys/fs/inotify/max_user_instances")
        value = path.read_text()
        path.write_text("8\n")
        try:
            yield network.bridge
        finally:
            path.write_text(value)

    @contextlib.contextmanager
    def dnsmasq(*changed):
        with _dnsmasq_replaced(network, *changed):
            yield network.bridge

    return {
        "dnsmasq stopped": (dnsmasq(), "network.dnsmasq_serves_bridge"),
        "bridge down": (bridge_down(), "network.bridge_up"),
        "bridge missing": (contextlib.nullcontext("lxcbgone0"), "network.bridge_exists"),
        "DHCP range outside the subnet": (dnsmasq("--dhcp-range=192.168.251.10,192.168.251.90,12h"),
                                          "network.dhcp_range"),
        "pam_cgfs line missing": (pam_line_missing(), "containers.cgroup_delegation"),
        "capacity short": (capacity_short(), "containers.capacity"),
    }


def test_each_fault_is_one_failure_in_seconds(seed_host, tmp_path, suite):
    """Without a fault nothing fails; then each fault alone gives exactly one failed
    check (outside kernel and host), everything it breaks is skipped as blocked by
    it, no sample starts, and the run ends within 20 s."""
    checks, _, output = _run(suite, tmp_path / "clean", seed_host)
    assert [i for i, c in checks.items() if c["outcome"] in ("failed", "error")] == [], output[-3000:]
    assert checks["containers.ssh_login.s02"]["outcome"] == "passed"
    found, wanted = {}, {}
    for fault, (injected, root) in _faults(seed_host).items():
        with injected as bridge:
            checks, elapsed, output = _run(suite, tmp_path / fault.replace(" ", "-"), seed_host, bridge)
        wanted[fault] = {"failed": [root], "within": True, "samples blocked": True, "said at the end": True}
        samples = [c for i, c in checks.items() if i.startswith(("containers.running.", "containers.ipv4."))]
        found[fault] = {
            "failed": sorted(i for i, c in checks.items() if c["outcome"] in ("failed", "error")),
            "within": elapsed < WITHIN_S,
            "samples blocked": bool(samples) and all(c["outcome"] == "skipped" and c.get("blocked_by") for c in samples),
            "said at the end": f"FAILED {root}" in output,
        }
    assert found == wanted
