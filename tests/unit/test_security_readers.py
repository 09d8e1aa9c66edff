"""Security readers in states this machine cannot produce (it has no AppArmor),
with fakes of /proc/PID and /sys, and the capability arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from lxc_compliance.readers.security import (APPARMOR_ENABLED, Confinement, RunningInit, apparmor_enabled,
                                             decode_capabilities, effective_capabilities)
from recorded_host import RecordedHost

STATES = Path(__file__).parent / "states"

# The unit tier (./lxcc test --unit): no root, no container, no network.
pytestmark = pytest.mark.unit


def _proc(tmp_path, pid: int, status: str, label: str | None):
    folder = tmp_path / "proc" / str(pid)
    (folder / "attr").mkdir(parents=True)
    (folder / "status").write_text(status)
    if label is not None:
        (folder / "attr/current").write_text(label)
    return RunningInit(pid, tmp_path / "proc")


def test_an_init_confined_by_apparmor(tmp_path):
    without_sys_module = ((1 << 41) - 1) & ~(1 << 16)
    init = _proc(tmp_path, 4242, f"Seccomp:\t2\nCapBnd:\t{without_sys_module:016x}\n", "lxc-container-default-cgns (enforce)\n")
    assert init.apparmor_label == "lxc-container-default-cgns (enforce)"
    assert init.seccomp == "2"
    assert "sys_admin" in init.bounding_set and "sys_module" not in init.bounding_set


def test_an_unconfined_init(tmp_path):
    assert _proc(tmp_path, 7, "Seccomp:\t0\n", "unconfined\n").apparmor_label == "unconfined"


def test_a_kernel_with_apparmor_on_and_off():
    assert not apparmor_enabled(RecordedHost({}))
    assert apparmor_enabled(RecordedHost({APPARMOR_ENABLED: "Y\n"}))
    assert not apparmor_enabled(RecordedHost({APPARMOR_ENABLED: "N\n"}))


def test_capabilities_by_the_kernels_numbers():
    assert decode_capabilities(1 << 21) == {"sys_admin"}
    assert decode_capabilities((1 << 41) - 1) == set(effective_capabilities("", ""))
    assert "sys_time" not in effective_capabilities("mac_admin mac_override sys_time sys_module sys_rawio", "")


def test_cap_keep_and_cap_drop_print_alike_and_the_mode_decides():
    listed = {"lxc.cap.drop": "net_admin\nsys_admin", "lxc.cap.keep": "net_admin\nsys_admin"}
    assert Confinement(listed, keeps=True).capabilities == {"net_admin", "sys_admin"}
    assert "sys_admin" not in Confinement(listed, keeps=False).capabilities


def test_what_nesting_and_mounts_are_made_of():
    nested = Confinement({"lxc.apparmor.allow_nesting": "1", "lxc.mount.auto": "proc:rw sys:rw cgroup:rw",
                          "lxc.mount.entry": "/etc etc/host none bind,ro 0 0\n/srv/data data none bind 0 0"})
    assert nested.nesting == ["lxc.apparmor.allow_nesting = 1", "lxc.mount.auto cgroup:rw"]
    found = nested.sensitive_mounts(("/etc", "/root"))
    assert found == ["lxc.mount.entry = /etc etc/host none bind,ro 0 0", "lxc.mount.auto proc:rw", "lxc.mount.auto sys:rw"]
    assert Confinement({"lxc.cgroup.devices.allow": "a"}).device_problem().startswith("lxc.cgroup.devices.allow = a")
    assert Confinement({"lxc.cgroup2.devices.deny": "a"}).device_problem() is None


# The denial probe's answers, as denial_probe.py prints them, judged (readers.denial).
_STOCK_PRIVILEGED = {"capabilities": "1fcfcfcffff", "seccomp": "2",
                     "module": [["finit_module(empty file)", 1]],
                     "device": [["mknod /dev/.p b 254:0", 0], ["open /dev/.p for reading", 1]],
                     "sysrq": [["open /proc/sysrq-trigger for writing", 2], ["open /proc/sys/kernel/panic for writing", 30]],
                     "mount": [["mount a fresh proc read-write", 0], ["mount a fresh sysfs read-write", 0]],
                     "clock": [["clock_settime(CLOCK_REALTIME, now)", 1]],
                     "kmsg": [["open /dev/kmsg for reading", 2], ["syslog(SYSLOG_ACTION_READ_ALL)", 0]]}


def _report(raw: dict, privileged: bool = True, config: dict | None = None):
    from lxc_compliance.readers.denial import ProbeReport

    # LXC's own policy as its repository ships it (config/templates/common.seccomp), not this machine's copy.
    common = {"lxc.seccomp.profile": str(STATES / "common.seccomp"),
              "lxc.cap.drop": "mac_admin mac_override sys_time sys_module sys_rawio"}
    return ProbeReport("c1", raw, privileged, Confinement({**common, **(config or {})}))


def test_each_denial_names_the_layer_that_refused_it():
    report = _report(_STOCK_PRIVILEGED)
    verdicts = {action: report.finding(action).verdict for action in ("module", "device", "sysrq", "mount", "clock", "kmsg")}
    assert verdicts == {"module": "denied", "device": "denied", "sysrq": "denied",
                        "mount": "allowed", "clock": "denied", "kmsg": "allowed"}
    assert "seccomp" in report.finding("module").reason and "sys_module" in report.finding("module").reason
    assert "device cgroup" in report.finding("device").reason
    assert "read-only mount" in report.finding("sysrq").reason
    assert "sys_time" in report.finding("clock").reason
    assert report.capabilities_held == "all but mac_admin mac_override sys_module sys_rawio sys_resource sys_time"
    assert "EROFS (Read-only file system)" in report.finding("sysrq").evidence


def test_what_allows_an_action_is_named():
    raw = dict(_STOCK_PRIVILEGED, capabilities="1ffffffffff", seccomp="0",
               module=[["finit_module(empty file)", 8]], clock=[["clock_settime(CLOCK_REALTIME, now)", 0]],
               device=[["mknod /dev/.p b 254:0", 0], ["open /dev/.p for reading", 0]],
               sysrq=[["open /proc/sys/kernel/panic for writing", 0]])
    report = _report(raw, config={"lxc.cap.drop": "", "lxc.seccomp.profile": "", "lxc.cgroup.devices.allow": "a",
                                  "lxc.mount.auto": "proc:rw sys:mixed"})
    assert report.finding("module").reason == ("the kernel read the module file (ENOEXEC (Exec format error)); "
                                              "allowed by lxc.cap.drop = (empty) keeps sys_module; "
                                              "no seccomp filter (lxc.seccomp.profile)")
    assert report.finding("clock").reason.endswith("allowed by lxc.cap.drop = (empty) keeps sys_time")
    assert "lxc.cgroup.devices.allow = a" in report.finding("device").reason
    assert report.finding("sysrq").reason.endswith("allowed by lxc.mount.auto proc:rw")


def test_an_unprivileged_container_is_denied_by_its_user_namespace():
    raw = dict(_STOCK_PRIVILEGED, capabilities="1ffffffffff",
               device=[["mknod /dev/.p b 254:0", 1]], clock=[["clock_settime(CLOCK_REALTIME, now)", 1]],
               sysrq=[["open /proc/sys/kernel/panic for writing", 13]], kmsg=[["syslog(SYSLOG_ACTION_READ_ALL)", 1]])
    report = _report(raw, privileged=False)
    assert report.finding("mount").verdict == "contained"
    assert "user namespace" in report.finding("clock").reason
    assert "user namespace" in report.finding("device").reason
    assert "file permissions" in report.finding("sysrq").reason
    assert report.finding("kmsg").verdict == "denied"
    assert report.capabilities_held == "all (of its own user namespace)"


def test_nothing_to_try_is_absent_not_passed():
    report = _report(dict(_STOCK_PRIVILEGED, sysrq=[["open /proc/sysrq-trigger for writing", 2]]))
    assert report.finding("sysrq").verdict == "absent"


def test_enosys_from_finit_module_is_a_denial_only_in_a_user_namespace():
    """LXD's seccomp policy answers finit_module with errno 38 (ENOSYS), as a kernel
    without module loading does: in a user namespace the kernel would refuse it
    anyway; in a privileged container nothing refused it."""
    raw = dict(_STOCK_PRIVILEGED, module=[["finit_module(empty file)", 38]])
    unprivileged = _report(raw, privileged=False).finding("module")
    assert unprivileged.verdict == "denied" and "user namespace" in unprivileged.reason and "ENOSYS" in unprivileged.reason
    assert _report(raw, privileged=True, config={"lxc.cap.drop": ""}).finding("module").verdict == "allowed"
