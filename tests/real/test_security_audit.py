"""Container security, statically and at run time: one weakness at a time
written into one container's config fails exactly its security check for that
container; the runtime checks read the real init of a sample started with the
weakness. Unprivileged copies are seed 000's (the user's lxcpath); privileged
ones are full copies of the lab's gold in root's."""

from __future__ import annotations

import contextlib
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import ROOT
from hoststate import HostState

# It holds the host shared: run after the tests that hold it alone (tests/conftest.py).
pytestmark = pytest.mark.shares_host


@pytest.fixture(autouse=True)
def _host_shared():
    """Each test makes containers of its own and reads the host's sysctls: held shared, so
    no test that changes the host (or compares all of it) runs beside it."""
    with HostState(shared=True):
        yield


def _audit(suite, folder: Path, profile_text: str, *args: str) -> dict[str, dict]:
    folder.mkdir(parents=True)
    profile = folder / "audit.yaml"
    profile.write_text(profile_text)
    result = suite.run(f"--profile={profile}", *args, timeout=300)
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-2000:]
    document = suite.results("audit")
    suite.report_dir.rename(folder / "reports")
    return {c["id"]: c for c in document["checks"]}


def _failed(checks: dict) -> list[str]:
    return sorted(i for i, c in checks.items() if c["outcome"] in ("failed", "error"))


@contextlib.contextmanager
def _appended(config: Path, lines: str):
    original = config.read_text()
    config.write_text(original + lines)
    try:
        yield
    finally:
        config.write_text(original)


def _weaknesses(config, name: str) -> dict:
    return {
        "AppArmor unconfined": (_appended(config(name), "lxc.apparmor.profile = unconfined\n"), f"security.apparmor.{name}"),
        "seccomp profile cleared": (_appended(config(name), "lxc.seccomp.profile =\n"), f"security.seccomp.{name}"),
        "a bind mount of the host's /etc": (
            _appended(config(name), "lxc.mount.entry = /etc etc/host none bind,ro,create=dir 0 0\n"),
            f"security.mounts.{name}"),
        "nesting.conf included": (_appended(config(name), "lxc.include = /usr/share/lxc/config/nesting.conf\n"),
                                  f"security.nesting.{name}"),
    }


def test_each_weakness_of_an_unprivileged_copy_fails_its_check(seed_fleet, tmp_path, suite):
    network, user, copies, _ = seed_fleet
    config = lambda name: user.gold.lxc.path / name / "config"  # noqa: E731
    profile = (f"extends: {ROOT / 'profiles' / 'workshop.yaml'}\nhost: {{user: {user.name}}}\n"
               f"network: {{bridge: {network.bridge}, subnet: {network.subnet}}}\n"
               f"fleet: {{lxcpaths: [{user.name}]}}\ncontainers: {{gold: {user.gold.name}}}\n")
    checks = _audit(suite, tmp_path / "clean", profile, "-m", "security", "--samples=0")
    assert _failed(checks) == [], {i: checks[i]["message"] for i in _failed(checks)}
    assert len([i for i in checks if i.startswith("security.seccomp.")]) == len(copies)
    assert checks["security.capabilities.pc1"]["outcome"] == "skipped", "an unprivileged copy's capabilities are its own"
    found, wanted = {}, {}
    weaknesses = _weaknesses(config, "pc2")
    weaknesses["privileged (its id map removed)"] = (
        _removed_idmap(config("pc3")), "security.unprivileged.pc3")
    for weakness, (injected, failure) in weaknesses.items():
        with injected:
            checks = _audit(suite, tmp_path / re.sub(r"\W+", "-", weakness), profile, "-m", "security", "--samples=0")
        found[weakness], wanted[weakness] = _failed(checks), [failure]
    assert found == wanted


@contextlib.contextmanager
def _removed_idmap(config: Path):
    original = config.read_text()
    config.write_text("".join(line for line in original.splitlines(keepends=True) if not line.startswith("lxc.idmap")))
    try:
        yield
    finally:
        config.write_text(original)


@pytest.fixture
def root_copies(lab_gold):
    """Two privileged full copies of the lab's gold in root's lxcpath (lxcct-priv...1, ...2; not
    pc*, which a workshop audit beside it would take for the event's copies), removed afterwards."""
    from lxc_compliance.lab.gold import GoldImage

    names = [f"lxcct-priv{uuid.uuid4().hex[:4]}{i}" for i in (1, 2)]
    copies = [GoldImage(name) for name in names]
    try:
        for name in names:
            subprocess.run(["lxc-copy", "-n", lab_gold.name, "-N", name], check=True, capture_output=True, timeout=300)
        yield names
    finally:
        for copy in copies:
            copy.remove()


def test_each_weakness_of_a_privileged_copy_fails_its_check(root_copies, tmp_path, suite):
    config = lambda name: Path("/var/lib/lxc") / name / "config"  # noqa: E731
    profile = (f"extends: {ROOT / 'profiles' / 'kernel.yaml'}\ncategories: [security]\n"
               f"fleet: {{lxcpaths: [root], pattern: 'lxcct-priv*'}}\n"
               "security: {allow_privileged: true, allow_nesting: true}\n")
    checks = _audit(suite, tmp_path / "clean", profile, "-m", "security")
    assert _failed(checks) == [], {i: checks[i]["message"] for i in _failed(checks)}
    assert checks[f"security.unprivileged.{root_copies[0]}"]["outcome"] == "warned"
    name = root_copies[1]
    found, wanted = {}, {}
    weaknesses = {
        "capability drops cleared": (_appended(config(name), "lxc.cap.drop =\n"), f"security.capabilities.{name}"),
        "all devices allowed": (_appended(config(name), "lxc.cgroup.devices.allow = a\n"), f"security.devices.{name}"),
    }
    for weakness, (injected, failure) in weaknesses.items():
        with injected:
            checks = _audit(suite, tmp_path / re.sub(r"\W+", "-", weakness), profile, "-m", "security")
        found[weakness], wanted[weakness] = _failed(checks), [failure]
    assert found == wanted


def _loaded_modules() -> str:
    """The host's module list (a kernel without module loading has no /proc/modules)."""
    modules = Path("/proc/modules")
    return modules.read_text() if modules.exists() else "no module loading"


def test_runtime_checks_read_the_real_init(lab_gold, tmp_path, suite):
    """A sample started from a gold whose config clears the capability drops and the
    seccomp policy, allows every device and mounts proc read-write: its init's CapBnd
    and Seccomp show it, and the denial probes inside find each action allowed,
    naming the line that allows it."""
    from lxc_compliance.lab.gold import GoldImage

    weak = GoldImage(f"lxcc-gold-test-{uuid.uuid4().hex[:6]}")
    try:
        subprocess.run(["lxc-copy", "-n", lab_gold.name, "-N", weak.name], check=True, capture_output=True, timeout=300)
        weak.prepare("student", None, "512M", "1G")
        with open(weak.config_path, "a") as config:
            config.write("lxc.cap.drop =\nlxc.seccomp.profile =\nlxc.cgroup.devices.allow = a\nlxc.mount.auto = proc:rw\n")
        profile = (f"extends: {ROOT / 'profiles' / 'lab.yaml'}\ncategories: [containers, security]\n"
                   f"containers: {{gold: {weak.name}, samples: 1, ssh: {{user: student}}}}\n")
        modules_before = _loaded_modules()
        checks = _audit(suite, tmp_path / "weak", profile)
    finally:
        weak.remove()
    assert checks["security.seccomp.s01"]["outcome"] == "failed"
    assert checks["security.seccomp.s01"]["actual"] == "Seccomp: 0"
    assert checks["security.capabilities.s01"]["outcome"] == "failed"
    assert "sys_module" in checks["security.capabilities.s01"]["actual"]
    for probe, allowed_by in (("module", "lxc.cap.drop = (empty) keeps sys_module; no seccomp filter"),
                              ("clock", "lxc.cap.drop = (empty) keeps sys_time"),
                              ("device", "lxc.cgroup.devices.allow = a"),
                              ("sysrq", "lxc.mount.auto proc:rw")):
        check = checks[f"security.denied_{probe}.s01"]
        assert check["outcome"] == "failed", (probe, check)
        assert allowed_by in check["actual"], (probe, check["actual"])
        assert allowed_by.split(";")[0] in check["remediation"] or probe == "module", check["remediation"]
    assert checks["security.denied_module.s01"]["evidence"].startswith("finit_module(empty file): ")
    assert modules_before == _loaded_modules()


def test_denial_probes_of_a_stock_privileged_sample(lab_gold, tmp_path, suite):
    """The lab's own privileged samples: module, device, settings and clock refused,
    each by the layer that refuses it; the fresh proc mount and the kernel log are
    a privileged container's by design (warned in the lab, failed where the profile
    does not allow privileged containers)."""
    profile = (f"extends: {ROOT / 'profiles' / 'lab.yaml'}\ncategories: [containers, security]\n"
               "containers: {samples: 1}\n")
    checks = _audit(suite, tmp_path / "stock", profile, "-k", "denied")
    layers = {"module": "seccomp (its policy refuses finit_module) and a capability (sys_module",
              "device": "the device cgroup refused to open it",
              "sysrq": "a read-only mount (lxc.mount.auto proc:mixed)",
              "clock": "a capability (sys_time is not in its bounding set"}
    for probe, layer in layers.items():
        assert checks[f"security.denied_{probe}.s01"]["outcome"] == "passed", checks[f"security.denied_{probe}.s01"]
        assert layer in checks[f"security.denied_{probe}.s01"]["actual"]
    assert "EPERM" in checks["security.denied_device.s01"]["evidence"]
    # The kernel log is only the host's where it sets dmesg_restrict (else the check points at host.dmesg_restrict).
    restricted = Path("/proc/sys/kernel/dmesg_restrict").read_text().strip() != "0"
    assert checks["security.denied_mount.s01"]["outcome"] == "warned", checks["security.denied_mount.s01"]
    assert checks["security.denied_kmsg.s01"]["outcome"] == ("warned" if restricted else "skipped")
    strict = profile + "security: {allow_privileged: false, allow_nesting: true}\n"
    checks = _audit(suite, tmp_path / "strict", strict, "-k", "denied")
    assert _failed(checks) == ["security.denied_kmsg.s01"] * restricted + ["security.denied_mount.s01"]
