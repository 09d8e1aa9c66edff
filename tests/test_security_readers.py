"""Security readers in states this machine cannot produce (it has no AppArmor),
with fakes of /proc/PID and /sys, and the capability arithmetic."""

from __future__ import annotations

from lxc_compliance.readers.security import (Confinement, RunningInit, apparmor_enabled, decode_capabilities,
                                             effective_capabilities)


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


def test_a_kernel_with_apparmor_on_and_off(tmp_path):
    parameters = tmp_path / "sys/module/apparmor/parameters"
    assert not apparmor_enabled(tmp_path)
    parameters.mkdir(parents=True)
    (parameters / "enabled").write_text("Y\n")
    assert apparmor_enabled(tmp_path)
    (parameters / "enabled").write_text("N\n")
    assert not apparmor_enabled(tmp_path)


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
