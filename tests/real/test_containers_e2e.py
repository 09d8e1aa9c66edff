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
from lxc_compliance.lab.gold import GoldImage
from lxc_compliance.readers.cgroups import Cgroups
from hoststate import HostState
from leftovers import run_leftovers

PASSWORD_ENV = "LXCC_TEST_PASSWORD"
PASSWORD = "seed-000-" + uuid.uuid4().hex[:12]

# It holds the host shared: run after the tests that hold it alone (tests/conftest.py).
pytestmark = pytest.mark.shares_host


@pytest.fixture(autouse=True)
def state(request):
    """The host for the test: shared with the other tests that make only what is theirs
    (each lab run its own bridge, user and containers, as two events' runs would); alone
    for one marked changes_host, whose changes are undone after it."""
    with HostState.for_test(request.node) as state:
        yield state


@pytest.fixture
def test_gold(lab_gold):
    """A full copy of the lab's gold image, prepared as the lab prepares it, to break."""
    gold = GoldImage(f"lxcc-gold-test-{uuid.uuid4().hex[:6]}")  # the suite's name: it may prepare it
    try:
        subprocess.run(["lxc-copy", "-n", lab_gold.name, "-N", gold.name], check=True, capture_output=True, timeout=300)
        gold.prepare("student", PASSWORD, "512M", "1G")
        yield gold
    finally:
        gold.remove()


def test_a_gold_destroyed_by_hand_and_built_again_is_prepared_again(test_gold):
    """The suite keeps what it did to a gold outside the container's folder: a gold destroyed
    with lxc-destroy and built anew must not inherit the old one's "prepared"."""
    subprocess.run(["lxc-destroy", "-n", test_gold.name], check=True, capture_output=True, timeout=120)
    assert test_gold.ensure() is True
    assert (test_gold.rootfs / "etc/machine-id").read_text().strip(), "lxc-create -t debian leaves a machine-id"
    test_gold.prepare("student", PASSWORD, "512M", "1G")
    assert (test_gold.rootfs / "etc/machine-id").read_text().strip() == ""


def _profile(tmp_path: Path, gold: str, samples: int = 2, extra: str = "", build_gold: bool = False,
             login: str = f", password_env: {PASSWORD_ENV}", boot_timeout_s: int = 20) -> Path:
    """A containers-only lab profile for GOLD; LOGIN is what ssh: holds beside the user."""
    path = tmp_path / "fleet.yaml"
    path.write_text(
        f"extends: {ROOT / 'profiles' / 'lab.yaml'}\ncategories: [containers]\n"
        f"containers:\n  gold: {gold}\n  build_gold: {str(build_gold).lower()}\n  samples: {samples}\n"
        f"  boot_timeout_s: {boot_timeout_s}\n  ssh: {{user: student{login}}}\n" + extra
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


def test_main_job_passes_from_a_cold_start(suite):
    """A new user's first run has no cached gold: the run builds one (here under a name of
    the test's own, so the other tests' gold is untouched), prepares it before any check
    reads it, and passes. Read unprepared, containers.gold_clean failed every first run."""
    gold = GoldImage(f"lxcc-gold-cold-{uuid.uuid4().hex[:6]}")
    try:
        result = suite.run("--profile=lab", f"--gold={gold.name}", "--samples=2", timeout=900)
        assert result.returncode == 0, result.stdout[-3000:]
        assert f"gold image {gold.name}: first build" in result.stderr + result.stdout
        checks = {c["id"]: c for c in suite.results("lab")["checks"]}
        assert checks["containers.gold_clean"]["outcome"] in ("passed", "warned"), checks["containers.gold_clean"]
        assert "machine-id (empty)" in checks["containers.gold_clean"]["actual"]
    finally:
        gold.remove()


def test_a_named_gold_that_is_not_there_is_a_usage_error(suite):
    """Said in one line before any check runs, with the containers that are there."""
    result = suite.run("--profile=lab", "--gold=no-such-gold", timeout=60)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "--gold=no-such-gold: there is no container no-such-gold in /var/lib/lxc (there: " in result.stderr
    assert "passed" not in result.stdout and "Traceback" not in result.stderr + result.stdout


def test_memory_limit_that_differs_from_the_profile(test_gold, tmp_path, suite):
    config = test_gold.config_path
    config.write_text(config.read_text().replace("limit_in_bytes = 512M", "limit_in_bytes = 256M"))
    checks, _ = _run(suite, _profile(tmp_path, test_gold.name))
    assert _failed(checks) == {"containers.memory_limit"}
    assert "256M" in checks["containers.memory_limit.s01"]["actual"]


def test_gold_image_without_openssh_server(test_gold, tmp_path, suite):
    subprocess.run(["chroot", str(test_gold.rootfs), "dpkg", "--purge", "openssh-server"], check=True, capture_output=True)
    checks, _ = _run(suite, _profile(tmp_path, test_gold.name))
    assert _failed(checks) == {"containers.ssh_login"}
    assert "did not answer" in checks["containers.ssh_login.s01"]["message"]
    assert checks["containers.ssh_login.s01"]["evidence"], "a failed login's evidence names the slowest units"
    assert checks["containers.boot_time.s01"]["blocked_by"] == "containers.ssh_login.s01"


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


def test_gold_host_keys_warned_unless_a_first_boot_makes_new_ones(test_gold, tmp_path, suite):
    """Debian's template leaves SSH host keys in the gold: every plain copy presents them
    (warned); with a drop-in running ssh-keygen -A before sshd, a copy makes its own."""
    checks, _ = _run(suite, _profile(tmp_path, test_gold.name, samples=0), "-k", "gold_clean")
    assert checks["containers.gold_clean"]["outcome"] == "warned", checks["containers.gold_clean"]
    assert "holds SSH host keys" in checks["containers.gold_clean"]["message"]
    assert "/etc/ssh/ssh_host_ed25519_key.pub" in checks["containers.gold_clean"]["actual"]
    assert f"rm {test_gold.rootfs}/etc/ssh/ssh_host_*" in checks["containers.gold_clean"]["remediation"]
    drop_in = test_gold.rootfs / "etc/systemd/system/ssh.service.d/host-keys.conf"
    drop_in.parent.mkdir(parents=True)
    drop_in.write_text("[Service]\nExecStartPre=/usr/bin/ssh-keygen -A\n")
    checks, _ = _run(suite, _profile(tmp_path, test_gold.name, samples=0), "-k", "gold_clean")
    assert checks["containers.gold_clean"]["outcome"] == "passed", checks["containers.gold_clean"]
    assert "made anew at first boot by /etc/systemd/system/ssh.service.d/host-keys.conf" in checks["containers.gold_clean"]["actual"]


def test_two_containers_given_one_mac(lab_gold, tmp_path, suite):
    profile = _profile(tmp_path, lab_gold.name, extra='  mac_prefix: "52:56:00:00:00:01"\n', build_gold=True)
    checks, _ = _run(suite, profile)
    assert "containers.mac" in _failed(checks)
    assert "also the MAC of" in checks["containers.mac.s01"]["message"]


def test_dnsmasq_stopped_before_the_samples_start(lab_gold, tmp_path, suite):
    from lxc_compliance.lab.network import LabNetwork, stop_process

    with LabNetwork(uuid.uuid4().hex[:10]) as network:
        stop_process(network.dnsmasq_pid)
        profile = _profile(tmp_path, lab_gold.name, build_gold=True, boot_timeout_s=8)
        profile.write_text(profile.read_text()
                           + f"network:\n  lab: false\n  bridge: {network.bridge}\n  subnet: {network.subnet}\n")
        started = time.monotonic()
        checks, _ = _run(suite, profile)
        elapsed = time.monotonic() - started
    # Said once, before any sample starts: no sample waits out its boot timeout.
    assert _failed(checks) == {"containers.network_ready"}
    assert f"no dnsmasq serves {network.bridge}" in checks["containers.network_ready"]["message"]
    assert "network.dnsmasq_serves_bridge" in checks["containers.network_ready"]["remediation"]
    blocked = [c for i, c in checks.items() if i.startswith(("containers.running.", "containers.ipv4."))]
    assert blocked and all(c["blocked_by"] == "containers.network_ready" for c in blocked)
    assert elapsed < 20


@pytest.mark.changes_host
def test_inotify_limit_is_named_before_any_sample_starts(state, lab_gold, tmp_path, suite):
    state.sysctl("fs.inotify.max_user_instances", 20)
    checks, _ = _run(suite, _profile(tmp_path, lab_gold.name, samples=5))
    assert _failed(checks) == {"containers.capacity"}, {i: c["message"] for i, c in checks.items() if c["outcome"] == "failed"}
    assert "fs.inotify.max_user_instances=20" in checks["containers.capacity"]["message"]
    skipped = [c for i, c in checks.items() if i.startswith("containers.running.")]
    assert len(skipped) == 5 and all(c["message"] == "not checked: containers.capacity failed" for c in skipped)


def _kill_lab_run_when(profile: str, folder: Path, pattern: str, tmp_path: Path, timeout: float = 180) -> None:
    """Start a lab run of 3 samples and SIGKILL all of it once FOLDER holds PATTERN:
    nothing of it can tear down."""
    import signal
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", f"--profile={profile}", "-m", "containers", "--samples=3",
         f"--report-dir={tmp_path / 'reports'}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not list(folder.glob(pattern)):
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


@pytest.mark.changes_host
def test_cleanup_removes_what_a_killed_run_left_and_nothing_else(lab_gold, tmp_path):
    """SIGKILL a lab run mid-fleet: nothing can tear down. `--cleanup` removes its
    containers, bridge, dnsmasq and files, and leaves a live run's alone."""
    import sys

    from lxc_compliance.lab import claims, sweeper
    from lxc_compliance.lab.network import LabNetwork

    with LabNetwork(uuid.uuid4().hex[:10]) as live:  # another run, alive throughout
        _kill_lab_run_when("lab", Path("/var/lib/lxc"), "lxcc-*-03/config", tmp_path)
        # Only dead runs' containers: another test's live lab run may have some at this moment.
        killed = {item.run for item in sweeper.find() if item.kind == "container" and not claims.alive(item.run)}
        assert len(killed) == 1, "the killed run should have left its containers behind"
        run = killed.pop()
        assert run_leftovers(run), "nothing to clean up: the test did not kill the run mid-fleet"

        result = subprocess.run([sys.executable, "-m", "pytest", "--cleanup"], cwd=ROOT, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"/var/lib/lxc/lxcc-{run}-01" in result.stdout
        assert run_leftovers(run) == []
        assert live.bridge not in result.stdout and run_leftovers(live.run_id) != []
        assert not any(item.run == run for item in sweeper.find())


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


def _pam_session_files() -> dict[str, str]:
    from lxc_compliance.lab.user import PAM_SESSION_FILES

    return {str(path): path.read_text() for path in PAM_SESSION_FILES if path.is_file()}


@pytest.mark.changes_host  # compares the host's pam files and lxc-usernet before and after
def test_unprivileged_lab_passes_end_to_end(lab_gold, suite):
    """The workshop path, self-provisioned: a throwaway user, pam_cgfs delegation,
    lxc-create -t local, samples started from the user's login session; the user
    and every host file are gone or restored afterwards."""
    from lxc_compliance.lab.user import USERNET

    pam_before = _pam_session_files()
    usernet_before = USERNET.read_text() if USERNET.exists() else None
    result = suite.run("--profile=lab-unprivileged", "-m", "containers or security", "--samples=2", timeout=900)
    assert result.returncode == 0, result.stdout[-3000:]
    document = suite.results("lab-unprivileged")
    checks = {c["id"]: c for c in document["checks"]}
    assert checks["containers.cgroup_delegation"]["outcome"] == "passed"
    for index in ("s01", "s02"):
        assert checks[f"containers.unprivileged.{index}"]["outcome"] == "passed"
        assert checks[f"containers.unprivileged.{index}"]["actual"] != "0 0 4294967295"
        assert checks[f"containers.ssh_login.{index}"]["outcome"] == "passed"
        assert "/home/lxcc-" in checks[f"containers.running.{index}"]["remediation"]
        # Refused for the right reason: the user namespace; a fresh proc is its own.
        for probe in ("module", "device", "sysrq", "mount", "clock", "kmsg"):
            assert checks[f"security.denied_{probe}.{index}"]["outcome"] in (
                ("passed", "skipped") if probe == "kmsg" else ("passed",)), checks[f"security.denied_{probe}.{index}"]
        assert "user namespace" in checks[f"security.denied_clock.{index}"]["actual"]
        assert checks[f"security.denied_mount.{index}"]["actual"].startswith("contained: mounted, inside its own user")
    assert run_leftovers(document["run_id"]) == []
    assert _pam_session_files() == pam_before
    assert (USERNET.read_text() if USERNET.exists() else None) == usernet_before


def _workshop_profile(tmp_path: Path, network, user, samples: int = 2) -> Path:
    path = tmp_path / "event.yaml"
    path.write_text(
        f"extends: {ROOT / 'profiles' / 'workshop.yaml'}\n"
        f"network:\n  bridge: {network.bridge}\n  subnet: {network.subnet}\n"
        f"containers:\n  gold: {user.gold.name}\n  user: {user.name}\n  samples: {samples}\n"
        f"  ssh: {{user: student, password_env: {PASSWORD_ENV}}}\n")
    return path


def _run_workshop(suite, tmp_path: Path, workshop_host, markers: str = "containers", samples: int = 2):
    """(pytest's output, the results' checks by id, the results) of a workshop-profile run on WORKSHOP_HOST."""
    network, user, password = workshop_host
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PASSWORD_ENV, password)
        result = suite.run(f"--profile={_workshop_profile(tmp_path, network, user, samples)}", "-m", markers, timeout=600)
    document = suite.results("event")
    return result.stdout, {c["id"]: c for c in document["checks"]}, document


def test_workshop_profile_with_samples_on_a_seed_000_host(workshop_host, tmp_path, suite):
    password = workshop_host[2]
    output, checks, document = _run_workshop(suite, tmp_path, workshop_host, "network or containers")
    assert _failed(checks) == set(), output[-3000:]
    assert checks["containers.unprivileged.s02"]["outcome"] == "passed"
    assert checks["network.dhcp_exchange"]["outcome"] == "passed"
    assert password not in output + (suite.report_dir / "event.json").read_text()
    assert run_leftovers(document["run_id"]) == []


def test_samples_of_a_gold_with_the_recipe_s_static_address_get_addresses_of_their_own(workshop_host, tmp_path, suite):
    """The recipe's gold has a static .100 that its copies get sed'ed out of; the suite's samples
    of it ask the bridge's DHCP instead of all taking .100 (found by the soak benchmark)."""
    network, user, _ = workshop_host
    interfaces = user.gold.rootfs / "etc/network/interfaces"
    gold_address = f"{network.subnet.network_address + 100}/{network.subnet.prefixlen}"
    interfaces.write_text(f"auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet static\n"
                          f"    address {gold_address}\n    gateway {network.address}\n")
    output, checks, _ = _run_workshop(suite, tmp_path, workshop_host)
    assert _failed(checks) == set(), output[-3000:]
    addresses = {checks[f"containers.ipv4.s0{n}"]["actual"] for n in (1, 2)}
    assert len(addresses) == 2 and gold_address.split("/")[0] not in addresses, addresses
    assert "inet static" in interfaces.read_text()  # the gold itself is as it was


@pytest.mark.changes_host  # the host's own pam files, without their pam_cgfs line
def test_login_sessions_without_pam_cgfs_are_named_before_samples_start(workshop_host, tmp_path, suite):
    """Without the pam line systemd in an unprivileged container exits at once:
    the run says so and starts nothing."""
    # Put back before the lab user's teardown restores the files it changed
    # (HostState would restore last, and bring its delegation back).
    delegated = _pam_session_files()
    try:
        for path, text in delegated.items():
            Path(path).write_text("".join(line for line in text.splitlines(keepends=True) if "pam_cgfs" not in line))
        _, checks, _ = _run_workshop(suite, tmp_path, workshop_host)
    finally:
        for path, text in delegated.items():
            Path(path).write_text(text)
    assert _failed(checks) == {"containers.cgroup_delegation"}
    assert "systemd in the container exits at once" in checks["containers.cgroup_delegation"]["message"]
    assert "memory" in checks["containers.cgroup_delegation"]["actual"]
    running = [c for i, c in checks.items() if i.startswith("containers.running.")]
    assert running and all(c["message"] == "not checked: containers.cgroup_delegation failed" for c in running)


def test_starts_survive_other_login_sessions_of_the_owner_ending(workshop_host):
    """pam_cgfs prunes every empty cgroup of a user when any of their login sessions
    ends, the one lxc-start is setting up included: without the suite's ordering
    of sessions (other processes' sessions of the user, as another run opens them)
    most of these starts fail ("Failed to set memory.limit_in_bytes")."""
    import threading

    from lxc_compliance.readers.owner_session import login_session

    lxc = workshop_host[1].gold.lxc
    lxc.as_owner("lxc-copy", "-n", workshop_host[1].gold.name, "-N", "churn1", "-s", "-B", "overlay", timeout=300)
    stop = threading.Event()

    def other_sessions():
        while not stop.is_set():
            with login_session(lxc.owner, needs_cgroups=False, timeout=60):
                subprocess.run(["su", "-", lxc.owner, "-c", "true"], capture_output=True, timeout=60)

    others = [threading.Thread(target=other_sessions) for _ in range(3)]
    states = []
    try:
        for thread in others:
            thread.start()
        for _ in range(5):
            done = lxc.as_owner("lxc-start", "-n", "churn1", timeout=60, check=False)
            states.append((lxc.state("churn1"), done.stderr.strip()[-300:]))
            lxc.query("lxc-stop", "-n", "churn1", "-k", timeout=60)
    finally:
        stop.set()
        for thread in others:
            thread.join(60)
    assert states == [("RUNNING", "")] * 5


def test_the_run_drives_a_user_s_containers_through_one_login_session(workshop_host):
    """pam_cgfs removes every empty cgroup of the user whenever a session of theirs opens or
    closes, also those a booting container's systemd has just made for a service (found by the
    soak benchmark: networking.service 219/CGROUP, no address, in 1 unprivileged lab run in 10).
    The run's commands as the user share one session: an empty cgroup made beside them stays."""
    lxc = workshop_host[1].gold.lxc
    first = lxc.as_owner("cat", "/proc/self/cgroup").stdout
    hierarchy = Cgroups.live().v1_hierarchy("memory")
    if hierarchy is None:
        pytest.skip("no cgroup v1 memory hierarchy here: pam_cgfs delegates the unified tree")
    session = next(line.split(":", 2)[2] for line in first.splitlines() if line.split(":")[1] == "memory")
    probe = Path(hierarchy.path) / session.lstrip("/") / "lxcc-probe"  # what a container's systemd makes
    probe.mkdir()
    try:
        second = lxc.as_owner("cat", "/proc/self/cgroup").stdout
        assert second == first, "each command opened a login session of its own"
        assert probe.is_dir(), "the empty cgroup beside the session was pruned"
    finally:
        if probe.is_dir():
            probe.rmdir()


def test_memory_limit_of_the_users_gold_that_differs(workshop_host, tmp_path, suite):
    config = workshop_host[1].gold.config_path
    config.write_text(config.read_text().replace("limit_in_bytes = 512M", "limit_in_bytes = 384M"))
    _, checks, _ = _run_workshop(suite, tmp_path, workshop_host, samples=1)
    assert _failed(checks) == {"containers.memory_limit"}
    assert "384" in checks["containers.memory_limit.s01"]["actual"]


def test_static_address_plan(lab_gold, tmp_path, suite):
    """Each sample gets its planned address from LXC, and asks DHCP for none."""
    profile = _profile(tmp_path, lab_gold.name, samples=3, extra="  addresses: {plan: static}\n", build_gold=True,
                       login="")
    result = suite.run(f"--profile={profile}", timeout=600)
    checks = {c["id"]: c for c in suite.results("fleet")["checks"]}
    assert _failed(checks) == set(), result.stdout[-3000:]
    addresses = [checks[f"containers.ipv4.s0{i}"]["actual"] for i in (1, 2, 3)]
    last_octets = [int(a.rsplit(".", 1)[1]) for a in addresses]
    assert last_octets == [200, 201, 202], addresses


def test_key_based_login(test_gold, tmp_path, suite):
    """With ssh.key_file the students' key logs in; a key sshd does not know fails exactly the login."""
    import paramiko

    key = paramiko.RSAKey.generate(2048)
    stranger = paramiko.RSAKey.generate(2048)
    ssh_dir = test_gold.rootfs / "home/student/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(f"{key.get_name()} {key.get_base64()} lxcc-test\n")
    uid = (test_gold.rootfs / "home/student").stat().st_uid
    for path in (ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(path, uid, uid)
    verdicts = {}
    for name, secret in (("known", key), ("stranger", stranger)):
        key_file = tmp_path / name
        secret.write_private_key_file(str(key_file))
        profile = _profile(tmp_path, test_gold.name, samples=1, login=f", key_file: {key_file}")
        suite.run(f"--profile={profile}", timeout=600)
        verdicts[name] = {c["id"]: c for c in suite.results("fleet")["checks"]}
    assert _failed(verdicts["known"]) == set()
    assert verdicts["known"]["containers.ssh_login.s01"]["actual"].startswith("publickey login")
    assert "containers.ssh_login" in _failed(verdicts["stranger"])
    assert _failed(verdicts["stranger"]) <= {"containers.ssh_login", "containers.boot_time", "containers.machine_id"}


@pytest.mark.changes_host
def test_cleanup_after_a_killed_unprivileged_run_restores_the_host(lab_gold, tmp_path):
    """SIGKILL mid-fleet leaves the lab user, its containers, its lxc-usernet grant
    and the pam_cgfs delegation; `--cleanup` removes and restores all of them."""
    import sys

    from lxc_compliance.lab.user import USERNET, delegating_runs

    pam_before = _pam_session_files()
    usernet_before = USERNET.read_text() if USERNET.exists() else None
    _kill_lab_run_when("lab-unprivileged", Path("/home"), "lxcc-*/.local/share/lxc/lxcc-*-02/config", tmp_path)
    users = list(Path("/home").glob("lxcc-*"))
    assert users, "the run was not killed mid-fleet"
    run = users[0].name.removeprefix("lxcc-")
    assert run in delegating_runs(), "the killed run's share of the pam_cgfs delegation should be left"

    result = subprocess.run([sys.executable, "-m", "pytest", "--cleanup"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"removed user lxcc-{run}" in result.stdout
    assert run_leftovers(run) == []
    assert _pam_session_files() == pam_before
    assert (USERNET.read_text() if USERNET.exists() else None) == usernet_before


def test_xdist_runs_a_lab_in_one_process(lab_gold, suite, tmp_path):
    """-n would give every worker its own lab under the same names: a lab run stays in one process."""
    # The lab's 10 s boot budget is for a host that runs the lab alone; beside this test
    # the other worker builds containers (a sample took 18.9 s to a login in CI).
    profile = tmp_path / "lab-beside-others.yaml"
    profile.write_text(f"extends: {ROOT / 'profiles' / 'lab.yaml'}\ncontainers: {{boot_budget_s: 60}}\n")
    result = suite.run(f"--profile={profile}", "-n", "2", "--samples=2", timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "-n ignored: the network and container checks share one lab" in result.stdout
    assert suite.results(profile.stem)["summary"]["failed"] == 0


@pytest.mark.changes_host
def test_inotify_limit_of_a_workshop_host_is_named_before_any_sample_starts(workshop_host, state, tmp_path, suite):
    """Unprivileged samples draw on their owner's inotify quota (the kernel charges a user
    namespace to its creator): the capacity check counts the owner's use, not root's."""
    state.sysctl("fs.inotify.max_user_instances", 12)
    _, checks, _ = _run_workshop(suite, tmp_path, workshop_host, samples=3)
    assert _failed(checks) == {"containers.capacity"}
    capacity = checks["containers.capacity"]["message"]
    assert "fs.inotify.max_user_instances=12 (0 in use) leaves room for about 2 containers" in capacity
    assert all(c["message"] == "not checked: containers.capacity failed" for i, c in checks.items() if i.startswith("containers.running."))


@pytest.mark.changes_host
def test_cleanup_removes_gold_caches_whose_source_is_gone(lab_gold, suite):
    """The suite's copy of a site's gold (lxcc-gold-from-NAME, a full root filesystem) stays
    while NAME exists, and --cleanup removes it, saying what it frees, once NAME is gone."""
    source = GoldImage(f"lxcct-site-gold-{uuid.uuid4().hex[:6]}")
    copy = None
    try:
        subprocess.run(["lxc-copy", "-n", lab_gold.name, "-N", source.name], check=True, capture_output=True, timeout=300)
        copy = source.own_copy()
        kept = suite.run("--cleanup", timeout=300)
        assert kept.returncode == 0, kept.stdout + kept.stderr
        assert copy.lxc.exists(copy.name) and copy.name not in kept.stdout
        source.remove()
        removed = suite.run("--cleanup", timeout=300)
        assert removed.returncode == 0, removed.stdout + removed.stderr
        assert f"removed the gold cache {copy.name}: its source {source.name} is gone; freed " in removed.stdout
        assert not copy.lxc.exists(copy.name)
    finally:
        source.remove()
        if copy is not None:
            copy.remove()


def test_the_lab_runs_a_debian_13_gold(suite, tmp_path):
    """containers.release: trixie builds (once, then cached) and starts a Debian 13 gold as the
    lab does bookworm's; what its systemd 257 makes of this host's layout is said, and on a
    v1 or hybrid host it is what a sample really reports (Tainted: cgroupsv1)."""
    profile = tmp_path / "trixie.yaml"
    profile.write_text(f"extends: {ROOT / 'profiles' / 'lab.yaml'}\n"
                       "containers: {gold: lxcc-gold-trixie, release: trixie, samples: 2}\n")
    result = suite.run(f"--profile={profile}", timeout=900)
    assert result.returncode == 0, result.stdout[-3000:]
    checks = {c["id"]: c for c in suite.results("trixie")["checks"]}
    assert checks["containers.ssh_login.s02"]["outcome"] == "passed"
    systemd = checks["containers.gold_systemd"]
    layout = Cgroups.live().layout
    assert systemd["outcome"] == ("passed" if layout == "unified" else "warned"), systemd
    assert "systemd 257" in systemd["actual"] and ("cgroupsv1" in systemd["actual"] or layout == "unified")
