"""libvirt's own checker against the virt category, item by item: the real
virt-host-validate (libvirt-clients, which ./lxcc test installs) and the suite run
side by side on this machine and in variants made for real in private mount
namespaces (the unified cgroup view with its memory controller absent, /dev/kvm and
/dev/net/tun hidden behind empty files, /sys/fs/fuse/connections gone). Every line
the tool prints has its check; each check gives the tool's verdict, or differs
where the catalogue says the tool errs, and its note says so."""

from __future__ import annotations

import fcntl
import glob
import os
import re
import shutil
import subprocess

import psutil
import pytest
import yaml

from conftest import ROOT, UNIFIED_VIEW

TOOL = shutil.which("virt-host-validate")
pytestmark = pytest.mark.skipif(TOOL is None, reason="virt-host-validate is not installed (./lxcc test installs it)")

OUTCOME = {"PASS": "passed", "WARN": "warned", "FAIL": "failed"}
LINE = re.compile(r"^\s*(QEMU|LXC):\s+Checking (.+?)\s*:\s+(PASS|WARN|FAIL)\b")
ITEMS = {c["id"]: c["validate"] for c in yaml.safe_load((ROOT / "checks" / "virt.yaml").read_text())["checks"]
         if c.get("validate")}


def _private(script: str, name: str) -> tuple[str, ...]:
    """A private mount namespace in which SCRIPT ran before the command that follows."""
    return ("unshare", "--mount", "--propagation", "private", "sh", "-c", f'{script} && exec "$@"', name)


HIDDEN_NODES = _private('mount --bind "$EMPTY" /dev/kvm && mount --bind "$EMPTY" /dev/net/tun', "hidden-nodes")
NO_FUSECTL = _private("mount -t tmpfs -o size=1m none /sys/fs/fuse", "no-fusectl")


def _kvm_runs_vms() -> bool:
    """The kernel creates a VM (the test's own reading, not the suite's)."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError:
        return False
    try:
        os.close(fcntl.ioctl(fd, 0xAE01, 0))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


FLAGGED = bool(re.search(r"^flags\s*:.*\b(vmx|svm)\b", open("/proc/cpuinfo").read(), re.M))
# Where this machine's CPU flags hide virtualization that its KVM gives: the tool fails it, the host has it.
HIDDEN_VT = set() if FLAGGED or not _kvm_runs_vms() else {"virt.qemu_hardware_virtualization"}
# The items the tool prints only where the CPU flags show vmx or svm (and, for the second IOMMU line,
# where the firmware's IOMMU table and the kernel's iommu_groups are there).
IOMMU_TABLE = any(os.path.exists(f"/sys/firmware/acpi/tables/{t}") for t in ("DMAR", "IVRS"))
FLAG_ONLY = (set() if FLAGGED else {"virt.qemu_kvm_device", "virt.qemu_kvm_access"}) | (
    set() if FLAGGED and IOMMU_TABLE and os.path.isdir("/sys/kernel/iommu_groups") else {"virt.qemu_iommu_kernel"})
VARIANTS = {
    # name: (command prefix, items where the suite's verdict is not the tool's: the tool errs there)
    "this machine": ((), HIDDEN_VT),
    "unified cgroup view": (UNIFIED_VIEW, HIDDEN_VT | {"virt.lxc_cgroup_freezer"}),
    # With the flags the tool also passes the empty /dev/kvm (it only asks whether the path exists).
    "device nodes hidden behind empty files": (HIDDEN_NODES, {"virt.qemu_tun"} | (set() if FLAG_ONLY else {"virt.qemu_kvm_device"})),
    "fusectl gone": (NO_FUSECTL, HIDDEN_VT),
}


def _tool(prefix: tuple[str, ...], env: dict) -> dict[tuple[str, str], str]:
    done = subprocess.run([*prefix, TOOL], capture_output=True, text=True, timeout=60, env=env)
    verdicts = {}
    for line in done.stdout.splitlines():
        if match := LINE.match(line):
            verdicts[(match[1], match[2])] = match[3]
    assert verdicts, done.stdout + done.stderr
    return verdicts


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_item_is_the_tool_s_verdict_or_a_documented_divergence(variant, suite, tmp_path):
    prefix, diverging = VARIANTS[variant]
    empty = tmp_path / "empty"
    empty.write_text("")
    env = {**os.environ, "EMPTY": str(empty)}
    tool = _tool(prefix, env)
    result = suite.run("--profile=virt", "-m", "virt", prefix=prefix, env={"EMPTY": str(empty)}, timeout=120)
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-2000:]
    checks = {c["id"]: c for c in suite.results("virt")["checks"]}
    unported = set(tool) - {(item["driver"], item["says"]) for item in ITEMS.values()}
    assert not unported, f"lines of virt-host-validate without a check: {unported}"
    differing, unprinted = set(), set()
    for check_id, item in ITEMS.items():
        check, says = checks[check_id], tool.get((item["driver"], item["says"]))
        if says is None:
            unprinted.add(check_id)
            assert check["note"].startswith("virt-host-validate prints no line for it here"), check
            continue
        assert says in check["evidence"], (check_id, check["evidence"])  # the tool's own line, as the suite read it
        if OUTCOME[says] != check["outcome"]:
            differing.add(check_id)
            assert check["note"].startswith(f"virt-host-validate says {says}: "), check
        else:
            assert not check["note"], check
    assert differing == diverging, {i: (checks[i]["outcome"], checks[i]["note"]) for i in differing ^ diverging}
    assert unprinted == FLAG_ONLY
    if variant == "device nodes hidden behind empty files":
        assert checks["virt.qemu_tun"]["actual"].startswith("/dev/net/tun: regular empty file")
        assert checks["virt.kvm_ok"]["outcome"] == "failed" and "KVM_CREATE_VM fails" in checks["virt.kvm_ok"]["message"]
    if variant == "unified cgroup view":
        assert checks["virt.lxc_cgroup_memory"]["outcome"] == "failed" and "hugetlb" in checks["virt.lxc_cgroup_memory"]["actual"]


# libvirt's daemon with the LXC driver, for real, in a private mount namespace: /run, /var/lib, /var/cache
# and /var/log are its own tmpfs and /etc/libvirt a copy, so nothing of it outlives the namespace; only the
# drivers in $DRIVERS load (LIBVIRT_DRIVER_DIR), none of them the network's or QEMU's.
DAEMON_VIEW = ("unshare", "--mount", "--propagation", "private", "sh", "-c", """
for folder in /run /var/lib /var/cache /var/log; do mount -t tmpfs -o size=64m,mode=755 none $folder; done
mkdir -p /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt
mount --bind "$ETC" /etc/libvirt
LIBVIRT_DRIVER_DIR="$DRIVERS" "$DAEMON" -p "$PIDFILE" > "$DAEMON_LOG" 2>&1 &
daemon=$!
for _ in $(seq 100); do [ -S /run/libvirt/libvirt-sock-ro ] || [ -S /run/libvirt/virtlxcd-sock-ro ] && break; sleep 0.1; done
"$@"; status=$?
kill $daemon; wait $daemon
exit $status
""", "daemon-view")
DRIVER_FOLDERS = sorted(os.path.dirname(p) for p in glob.glob("/usr/lib/*/libvirt/connection-driver/libvirt_driver_lxc.so"))


@pytest.mark.skipif(not DRIVER_FOLDERS or not shutil.which("libvirtd"),
                    reason="libvirt's daemon and LXC driver are not installed (./lxcc test installs them)")
@pytest.mark.parametrize("drivers, outcome", [("lxc", "passed"), ("secret", "failed"), (None, "failed")],
                         ids=["LXC driver loaded", "daemon without the LXC driver", "no daemon"])
def test_libvirt_s_lxc_driver_is_ready_only_where_it_answers(drivers, outcome, suite, tmp_path):
    profile = tmp_path / "virt-lxc.yaml"
    profile.write_text(f"extends: {ROOT / 'profiles' / 'virt.yaml'}\nvirt: {{lxc_driver: true}}\n")
    etc, folder, log = tmp_path / "etc", tmp_path / "drivers", tmp_path / "daemon.log"
    shutil.copytree("/etc/libvirt", etc)
    folder.mkdir()
    if drivers:
        os.symlink(f"{DRIVER_FOLDERS[0]}/libvirt_driver_{drivers}.so", folder / f"libvirt_driver_{drivers}.so")
    # Where libvirt ships its per-driver daemons (Debian 13), lxc:/// goes to virtlxcd; else to libvirtd.
    daemon = shutil.which("virtlxcd") if drivers == "lxc" and shutil.which("virtlxcd") else shutil.which("libvirtd")
    env = {"ETC": str(etc), "DRIVERS": str(folder), "DAEMON": daemon, "PIDFILE": str(tmp_path / "daemon.pid"),
           "DAEMON_LOG": str(log)}
    result = suite.run("--profile=" + str(profile), "-k", "lxc_driver", env=env, timeout=120,
                       prefix=DAEMON_VIEW if drivers else ())
    assert result.returncode == (0 if outcome == "passed" else 1), result.stdout[-3000:] + result.stderr[-2000:]
    check = next(c for c in suite.results("virt-lxc")["checks"] if c["id"] == "virt.lxc_driver")
    assert check["outcome"] == outcome, (check, log.read_text() if log.exists() else "")
    if outcome == "passed":
        assert "through /usr/lib/libvirt/libvirt_lxc" in check["actual"], check
    else:
        assert check["message"].startswith("libvirt's LXC driver does not answer on lxc:///system: "), check
    # The daemon went with its namespace: no libvirt process and nothing of it on the host. The
    # script waits for the daemon itself; a child of it may take a moment more to exit (seen in CI).
    lingering = [p for p in psutil.process_iter(["name"]) if p.info["name"] in ("libvirtd", "virtlxcd")]
    assert not psutil.wait_procs(lingering, timeout=10)[1]
    assert not os.path.exists("/run/libvirt")
