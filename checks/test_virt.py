"""A virtualization host: every item of libvirt's virt-host-validate for its QEMU and
LXC drivers, and kvm-ok's verdict. ``checks/virt.yaml`` says which items and how
severe a miss is; readers.virt reads them, and where the real tool errs."""

import pytest

from lxc_compliance.readers.virt import ItemReading


def test_validate_item(check, virt_host, virt_tool, observed):
    reading = ItemReading.of(check.validate, virt_host, virt_tool)
    observed.expected = "PASS"
    observed.actual = f"{reading.found}: {reading.verdict.line()}"
    observed.evidence = reading.evidence
    observed.note = reading.note
    assert reading.verdict.passed, reading.verdict.hint


def test_kvm_ok(check, virt_host, observed):
    kvm = virt_host.kvm
    observed.expected = "/dev/kvm opens and a VM is created: KVM acceleration can be used"
    observed.actual = str(kvm)
    observed.evidence = virt_host.kvm_ok_words()
    observed.values = {"fix": virt_host.kvm_fix()}
    assert kvm.creates_vm, f"KVM acceleration can NOT be used: {virt_host.kvm_ok_words()}"


def test_libvirt_networks(check, libvirt_networks, host_network, profile, observed):
    if libvirt_networks is None:
        pytest.skip("libvirt's networks are not installed here (libvirt-daemon-config-network)")
    event = profile.given("network.bridge")
    observed.expected = (f"no libvirt network on {event} or " if event else "no libvirt network ") + \
        "in a subnet another link of the host has"
    observed.actual = "; ".join(n.describe() for n in libvirt_networks) or "no network defined"
    clashes = [f"{n.name} uses {event}, the event's bridge" for n in libvirt_networks if event and n.bridge == event]
    clashes += [f"{n.name}'s {n.address.network} ({n.bridge}) overlaps {link}'s {network}"
                for n in libvirt_networks if n.address for link, network in host_network.overlapping(n.address.network, n.bridge)]
    observed.values = {"network": libvirt_networks[0].name if libvirt_networks else "default"}
    assert not clashes, "; ".join(clashes)


def test_libvirt_lxc_driver(check, libvirt_lxc, observed):
    observed.values = {"uri": libvirt_lxc.uri}
    observed.expected = f"{libvirt_lxc.uri} answers and offers container guests (os_type exe)"
    observed.actual = libvirt_lxc.describe()
    observed.evidence = f"virsh --readonly -c {libvirt_lxc.uri} capabilities"
    assert libvirt_lxc.problem is None, libvirt_lxc.problem
