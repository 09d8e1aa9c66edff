"""virt-host-validate's items on recorded hosts this machine is not: an Intel host
with VT-x but no kvm module, an AMD host with SEV the kernel does not enable, a
Debian 13 host on cgroup2 alone (files as such hosts have them)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from lxc_compliance.model.catalog import Catalog
from lxc_compliance.readers.virt import ItemReading, ToolLines, VirtHost, evaluate
from recorded_host import RecordedHost

pytestmark = pytest.mark.unit

ITEMS = {c.id: c.validate for c in Catalog.load().category("virt") if c.validate}
UNIFIED = {"/proc/self/mounts": "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n",
           "/proc/self/cgroup": "0::/init.scope\n",
           "/sys/fs/cgroup/init.scope/cgroup.controllers": "cpuset cpu io memory pids\n",
           "/sys/fs/cgroup/init.scope/cgroup.freeze": "0\n"}


def _verdicts(host) -> dict[str, tuple[str, str | None]]:
    virt = VirtHost(host)
    found = {}
    for check_id, item in ITEMS.items():
        verdict, tool, _ = evaluate(item, virt)
        found[check_id] = (verdict.result, tool.result if tool else None)
    return found


def test_vt_x_without_the_kvm_module():
    host = RecordedHost({"/proc/cpuinfo": "processor\t: 0\nflags\t\t: fpu vmx ept\n", "/dev/net/tun": "", **UNIFIED})
    verdicts = _verdicts(host)
    assert verdicts["virt.qemu_hardware_virtualization"] == ("PASS", "PASS")
    assert verdicts["virt.qemu_kvm_device"] == ("FAIL", "FAIL"), "shown where the flags are there"
    assert verdicts["virt.qemu_iommu"] == ("WARN", "WARN")  # Intel, but no DMAR table
    assert "kvm_intel or kvm_amd is not loaded" in VirtHost(host).kvm_ok_words()


def test_amd_sev_the_kernel_does_not_enable():
    host = RecordedHost({"/proc/cpuinfo": "flags\t\t: svm sev\n", "/sys/firmware/acpi/tables/IVRS": "",
                         "/sys/kernel/iommu_groups/0/type": "DMA\n", "/sys/module/kvm_amd/parameters/sev": "N\n"})
    verdict, tool, _ = evaluate(ITEMS["virt.qemu_secure_guest"], VirtHost(host))
    assert (verdict.result, verdict.hint) == ("WARN", "AMD Secure Encrypted Virtualization appears to be disabled in kernel. "
                                              "Add kvm_amd.sev=1 to the kernel cmdline arguments")
    assert evaluate(ITEMS["virt.qemu_iommu"], VirtHost(host))[0].passed
    assert evaluate(ITEMS["virt.qemu_iommu_kernel"], VirtHost(host))[1].passed  # shown: the table and groups are there


def test_cgroup2_alone_the_tool_fails_the_freezer_the_kernel_has():
    verdicts = _verdicts(RecordedHost(UNIFIED, release="6.12.48+deb13-amd64"))
    assert verdicts["virt.lxc_cgroup_blkio"] == ("PASS", "PASS"), "blkio is io on cgroup2"
    assert verdicts["virt.lxc_cgroup_freezer"] == ("PASS", "FAIL")
    assert verdicts["virt.lxc_cgroup_memory"] == ("PASS", "PASS")
    tool = ToolLines("   LXC: Checking for cgroup 'freezer' controller support                     : FAIL (Enable 'freezer' "
                     "in kernel Kconfig file or mount/enable cgroup controller in your system)")
    reading = ItemReading.of(ITEMS["virt.lxc_cgroup_freezer"], VirtHost(RecordedHost(UNIFIED)), tool)
    assert reading.note.startswith("virt-host-validate says FAIL: its cgroup2 code knows no freezer")
    assert reading.evidence.startswith("LXC: Checking for cgroup 'freezer'")


class _LinkedHost(RecordedHost):
    """A recorded host whose links carry addresses (name -> 'ADDRESS/PREFIX')."""

    def __init__(self, files, links):
        super().__init__({**files, **{f"/sys/class/net/{name}/ifindex": "1" for name in links}})
        self.links = links

    def link(self, name):
        from lxc_compliance.readers.machine import Link

        return Link(name, True, "bridge", True, addresses=(self.links[name],)) if name in self.links else Link(name)


DEFAULT_XML = (Path(__file__).parent / "states" / "libvirt-default.xml").read_text()
LIBVIRT = {"/etc/libvirt/qemu/networks/default.xml": DEFAULT_XML,
           "/etc/libvirt/qemu/networks/autostart/default.xml": DEFAULT_XML}


@pytest.mark.parametrize("br0, fails", [("10.10.0.1/24", None), ("192.168.122.10/24", "default's 192.168.122.0/24 "
                                                                                      "\\(virbr0\\) overlaps br0's")])
def test_libvirt_s_default_network_against_the_event_s_bridge(br0, fails):
    import checks.test_virt as virt_checks
    from lxc_compliance.plugin.run import Observation
    from lxc_compliance.readers.host_network import HostNetwork
    from lxc_compliance.readers.libvirt_net import libvirt_networks

    host = _LinkedHost(LIBVIRT, {"br0": br0, "virbr0": "192.168.122.1/24"})
    networks = libvirt_networks(host)
    assert [n.describe() for n in networks] == [
        "default: virbr0 192.168.122.1/24, forward nat, DHCP 192.168.122.2-192.168.122.254, starts with libvirtd, not running"]
    check, profile = Catalog.load().by_id["virt.libvirt_networks"], SimpleNamespace(given=lambda key: "br0")
    if fails:
        with pytest.raises(AssertionError, match=fails):
            virt_checks.test_libvirt_networks(check, networks, HostNetwork(host), profile, Observation())
    else:
        virt_checks.test_libvirt_networks(check, networks, HostNetwork(host), profile, Observation())
