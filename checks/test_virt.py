"""A virtualization host: every item of libvirt's virt-host-validate for its QEMU and
LXC drivers, and kvm-ok's verdict. ``checks/virt.yaml`` says which items and how
severe a miss is; readers.virt reads them, and where the real tool errs."""

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
