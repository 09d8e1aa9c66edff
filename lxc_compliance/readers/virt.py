"""A virtualization host as libvirt's own checker sees it, and as it really is.

``ValidateItem`` is one line of ``virt-host-validate`` (libvirt 9.0 to 11, the QEMU
and LXC drivers): what the tool reads, the verdict it gives (``as_the_tool``), and
the verdict the host deserves (``verdict``) where the tool errs: it takes a CPU
without the vmx or svm flag for a host without KVM although the hypervisor below
may hide the flag and still give a working /dev/kvm, and on cgroup2 it knows no
freezer although the kernel freezes a cgroup2 group itself (cgroup.freeze, 5.2+).
``KvmProbe`` is kvm-ok's question answered by the kernel: /dev/kvm opened, its
API version asked and a VM created (and closed at once). ``ToolLines`` is what the
real tool printed, where it is installed: each item's evidence, as the kernel
checks carry lxc-checkconfig's. Every read goes through the one Host.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import NamedTuple

from lxc_compliance.model.versions import parse_version
from lxc_compliance.readers.cgroups import Cgroups
from lxc_compliance.readers.machine import THIS_HOST, Host

# libvirt's names for the cgroup controllers, and cgroup2's where they differ.
V2_NAME = {"blkio": "io"}
# The hint libvirt prints for a controller it does not find.
CGROUP_HINT = "Enable '{0}' in kernel Kconfig file or mount/enable cgroup controller in your system"
# Run by the host's own python3: open /dev/kvm, ask its API version, create a VM, close both.
KVM_PROBE = r"""
import fcntl, json, os
answer = {}
try:
    fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
except OSError as exc:
    answer["open"] = exc.strerror
else:
    try:
        answer["api"] = fcntl.ioctl(fd, 0xAE00)
        vm = fcntl.ioctl(fd, 0xAE01, 0)
        os.close(vm)
        answer["vm"] = True
    except OSError as exc:
        answer["vm"] = exc.strerror
    os.close(fd)
print(json.dumps(answer))
"""


def parse_cpu_flags(text: str) -> set[str]:
    r"""The CPU flags of /proc/cpuinfo TEXT, every processor's together, as virt-host-validate
    reads them (lines starting flags, Features, features or facilities).

    >>> sorted(parse_cpu_flags("processor\t: 0\nflags\t\t: fpu vmx hypervisor\n"))
    ['fpu', 'hypervisor', 'vmx']
    """
    return {flag for line in text.splitlines()
            if line.startswith(("flags", "Features", "features", "facilities")) and ":" in line
            for flag in line.split(":", 1)[1].split()}


@dataclass(frozen=True)
class KvmProbe:
    """Whether the kernel runs VMs here: /dev/kvm opened, KVM_GET_API_VERSION, KVM_CREATE_VM."""

    opened: bool
    api: int | None = None
    creates_vm: bool = False
    error: str = ""

    @classmethod
    def run(cls, host: Host = THIS_HOST) -> "KvmProbe":
        if not host.exists("/dev/kvm"):
            return cls(False, error="there is no /dev/kvm")
        done = host.run("python3 -c %s", KVM_PROBE, timeout=20)
        try:
            answer = json.loads(done.stdout)
        except ValueError:
            return cls(False, error=f"the probe did not run: {(done.stderr or done.stdout).strip()[:200] or done.rc}")
        if "open" in answer:
            return cls(False, error=f"/dev/kvm does not open: {answer['open']}")
        made = answer.get("vm") is True
        return cls(True, answer.get("api"), made, "" if made else f"KVM_CREATE_VM fails: {answer.get('vm')}")

    def __str__(self) -> str:
        """In words.

        >>> str(KvmProbe(True, 12, True))
        '/dev/kvm opens, KVM API 12, a VM is created'
        """
        if self.creates_vm:
            return f"/dev/kvm opens, KVM API {self.api}, a VM is created"
        return self.error


@dataclass(frozen=True)
class Verdict:
    """PASS, WARN, FAIL (virt-host-validate's words; WARN and FAIL are its item's level) and why."""

    result: str
    hint: str = ""

    @property
    def passed(self) -> bool:
        return self.result == "PASS"

    def line(self) -> str:
        """As the tool ends its line.

        >>> Verdict("WARN", "Load the 'vhost_net' module").line(), Verdict("PASS").line()
        ("WARN (Load the 'vhost_net' module)", 'PASS')
        """
        return self.result if self.passed else f"{self.result} ({self.hint})"


class VirtHost:
    """What virt-host-validate reads of a host, read once: CPU flags, devices, namespaces,
    cgroups, the kernel release, firmware tables."""

    def __init__(self, host: Host = THIS_HOST) -> None:
        self.host = host
        self._flags: set[str] | None = None
        self._cgroups: Cgroups | None = None
        self._kvm: KvmProbe | None = None

    @property
    def cpu_flags(self) -> set[str]:
        """The flags of /proc/cpuinfo (parse_cpu_flags)."""
        if self._flags is None:
            self._flags = parse_cpu_flags(self.host.text("/proc/cpuinfo") or "")
        return self._flags

    @property
    def hardware_flag(self) -> str | None:
        """vmx (Intel) or svm (AMD), where /proc/cpuinfo shows one."""
        return next((flag for flag in ("vmx", "svm") if flag in self.cpu_flags), None)

    @property
    def kvm(self) -> KvmProbe:
        if self._kvm is None:
            self._kvm = KvmProbe.run(self.host)
        return self._kvm

    @property
    def cgroups(self) -> Cgroups:
        if self._cgroups is None:
            self._cgroups = Cgroups.live(self.host)
        return self._cgroups

    def _own_v2_group(self) -> str:
        """The reading process's own cgroup2 path ('0::/PATH' of /proc/self/cgroup), where libvirt looks."""
        for line in (self.host.text("/proc/self/cgroup") or "").splitlines():
            if line.startswith("0::"):
                return line[3:].strip() or "/"
        return "/"

    def v2_controllers(self) -> set[str] | None:
        """The controllers of the process's own cgroup2 group (None: no cgroup2 mounted)."""
        if not self.cgroups.v2:
            return None
        mount = self.cgroups.v2[0].path
        words = self.host.text(f"{mount}{self._own_v2_group()}/cgroup.controllers".replace("//", "/"))
        return set((words or "").split())

    def controller(self, name: str) -> tuple[bool, bool, str]:
        """(libvirt finds NAME, the kernel has it for containers here, where it is) on this host."""
        v1 = self.cgroups.v1_hierarchy(name)
        if v1 is not None:
            return True, True, f"cgroup v1 at {v1.path}"
        offered = self.v2_controllers()
        if offered is None:
            return False, False, "no cgroup v1 hierarchy carries it and no cgroup2 is mounted"
        where = f"cgroup2 at {self.cgroups.v2[0].path}"
        if name == "cpuacct":  # cgroup2 has no cpuacct: every group's cpu.stat counts its usage
            return True, True, f"{where}: cpu.stat (cgroup2 counts usage in every group)"
        if name == "devices":  # cgroup2 filters devices with BPF programs, no controller file
            return True, True, f"{where}: device filtering by BPF programs"
        if name == "freezer":  # cgroup2's own cgroup.freeze, which libvirt's cgroup2 code does not know
            frozen = self.host.exists(f"{self.cgroups.v2[0].path}/init.scope/cgroup.freeze") or \
                parse_version(self.host.release()) >= parse_version("5.2")
            return False, frozen, f"{where}: {'cgroup.freeze in every group but the root' if frozen else 'a kernel before 5.2 has no cgroup.freeze'}"
        v2 = V2_NAME.get(name, name)
        found = v2 in offered
        return found, found, f"{where} offers {', '.join(sorted(offered)) or 'no controller'}"

    def kvm_ok_words(self) -> str:
        """What stands between this host and KVM, as kvm-ok would say it."""
        flag, kvm = self.hardware_flag, self.kvm
        if kvm.creates_vm:
            cpu = f"the CPU shows {flag}" if flag else ("the CPU flags show no vmx or svm (a hypervisor below hides "
                                                         "them) but the kernel's KVM works")
            return f"INFO: /dev/kvm exists; {cpu}. KVM acceleration can be used"
        if not self.host.exists("/dev/kvm"):
            if flag:
                return (f"INFO: the CPU shows {flag} but there is no /dev/kvm: kvm_intel or kvm_amd is not loaded, "
                        "or the firmware disables virtualization (kvm-ok reads MSR 0x3a for that)")
            return ("INFO: the CPU shows no vmx or svm and there is no /dev/kvm: this CPU, or the hypervisor "
                    "this machine runs on, offers no virtualization")
        return f"INFO: /dev/kvm exists but {kvm}"

    def kvm_fix(self) -> str:
        if self.kvm.creates_vm:
            return "Nothing to do."
        if self.host.exists("/dev/kvm"):
            return "Run the VMs as a user of the kvm group (or root), and read the kernel log for KVM's errors."
        if self.hardware_flag:
            return "modprobe kvm_intel (or kvm_amd); if it refuses, enable VT-x or AMD-V in the firmware."
        return "Enable VT-x or AMD-V in the firmware, or nested virtualization in the hypervisor below this machine."

    def kernel_at_least(self, version: str) -> bool:
        return parse_version(self.host.release()) >= parse_version(version)

    def node(self, path: str) -> str:
        """What PATH is, in words: 'character device 10:200', 'directory', 'regular empty file (0 bytes)', 'missing'."""
        done = self.host.run("stat -L -c '%%F %%t:%%T %%s' %s", path)
        if done.rc != 0:
            return "missing"
        kind, numbers, size = done.stdout.strip().rsplit(" ", 2)
        if kind == "character special file":
            major, minor = (int(n, 16) for n in numbers.split(":"))
            return f"character device {major}:{minor}"
        return f"{kind} ({size} bytes)" if kind.startswith("regular") else kind

    def accessible(self, path: str) -> bool:
        """PATH opens for reading and writing for the user the suite runs as (the tool's access(R_OK|W_OK))."""
        return self.host.run("test -r %s -a -w %s", path, path).rc == 0


class Judgement(NamedTuple):
    """One item judged: the verdict the host deserves, the one virt-host-validate gives
    (None where it prints no such line), and what was found."""

    deserved: Verdict
    tool: Verdict | None
    found: str


@dataclass(frozen=True)
class ItemReading:
    """One virt-host-validate item on one host: the verdict it deserves, what was found, the line the
    real tool printed, and where the two differ, why."""

    verdict: Verdict
    found: str
    # The tool's own line, or why there is none.
    evidence: str
    note: str = ""

    @classmethod
    def of(cls, item: dict, virt: VirtHost, tool: "ToolLines") -> "ItemReading":
        verdict, reproduced, found = evaluate(item, virt)  # a Judgement
        line = tool.line(item["driver"], item["says"])
        says = tool.verdict(item["driver"], item["says"]) if tool.installed else (reproduced.result if reproduced else None)
        errs = item.get("errs") or "its reading differs (the evidence has its line)"
        if says is None:
            note = f"virt-host-validate prints no line for it here: {errs}"
        else:
            note = f"virt-host-validate says {says}: {errs}" if says != verdict.result else ""
        evidence = line or ("virt-host-validate printed no line for this item" if tool.installed
                            else "virt-host-validate is not installed here (libvirt-clients)")
        return cls(verdict, found, evidence, note)


def evaluate(item: dict, virt: VirtHost) -> Judgement:
    """ITEM (a catalogue check's ``validate``) on VIRT, judged as the host deserves and as the tool would."""
    kind, level, hint = item["kind"], item["level"], item.get("hint", "")
    fail = Verdict(level, hint)
    if kind == "hardware_virtualization":
        flag = virt.hardware_flag
        tool = Verdict("PASS") if flag else Verdict("FAIL", hint)
        kvm = virt.kvm
        if flag:
            return Judgement(tool, tool, f"CPU flag {flag}; {kvm}")
        found = f"no vmx or svm among the CPU flags; {kvm}"
        return Judgement(Verdict("PASS") if kvm.creates_vm else tool, tool, found)
    if kind in ("device", "device_access"):
        path = item["path"]
        # The tool looks at /dev/kvm only where the CPU flags show hardware virtualization.
        shown = not item.get("needs_flag") or virt.hardware_flag
        if kind == "device_access":
            there = virt.accessible(path)
            verdict = Verdict("PASS") if there else fail
            opens = "opens read-write" if there else "does not open read-write"
            return Judgement(verdict, verdict if shown else None, f"{path} {opens} for this user")
        there = virt.host.exists(path)
        tool = Verdict("PASS") if there else fail
        found = virt.node(path)
        # A node of /dev must be a character device (an empty file there passes the tool's access(F_OK)).
        real = there and (not path.startswith("/dev/") or found.startswith("character device"))
        return Judgement(Verdict("PASS") if real else fail, tool if shown else None, f"{path}: {found}")
    if kind == "namespace":
        there = virt.host.exists(f"/proc/self/ns/{item['namespace']}")
        verdict = Verdict("PASS") if there else fail
        return Judgement(verdict, verdict, f"/proc/self/ns/{item['namespace']} {'exists' if there else 'is missing'}")
    if kind == "cgroup":
        name = item["controller"]
        tool_finds, really, where = virt.controller(name)
        tool = Verdict("PASS") if tool_finds else Verdict(level, CGROUP_HINT.format(name))
        return Judgement(Verdict("PASS") if really else Verdict(level, CGROUP_HINT.format(name)), tool, where)
    if kind == "kernel":
        release = virt.host.release()
        verdict = Verdict("PASS") if virt.kernel_at_least(item["version"]) else fail
        return Judgement(verdict, verdict, f"Linux {release}")
    if kind == "iommu":
        return _iommu(virt, level)
    if kind == "iommu_kernel":
        return _iommu_kernel(virt, level)
    if kind == "secure_guest":
        return _secure_guest(virt, level)
    raise ValueError(f"no such virt-host-validate item kind: {kind}")


def _iommu(virt: VirtHost, level: str) -> Judgement:
    flag = virt.hardware_flag
    table = {"vmx": "DMAR", "svm": "IVRS"}.get(flag or "")
    if table is None:
        verdict = Verdict(level, "Unknown if this platform has IOMMU support")
        return Judgement(verdict, verdict, "no vmx or svm CPU flag: the tool cannot tell Intel's or AMD's IOMMU")
    if not virt.host.exists(f"/sys/firmware/acpi/tables/{table}"):
        verdict = Verdict(level, f"No ACPI {table} table found, IOMMU either disabled in BIOS or not supported by "
                                 "this hardware platform")
        return Judgement(verdict, verdict, f"no /sys/firmware/acpi/tables/{table}")
    return Judgement(Verdict("PASS"), Verdict("PASS"), f"ACPI {table} present")


def _iommu_kernel(virt: VirtHost, level: str) -> Judgement:
    """The tool's second IOMMU line, printed only where the first found Intel's or AMD's table."""
    flag = virt.hardware_flag
    table = {"vmx": "DMAR", "svm": "IVRS"}.get(flag or "")
    groups = virt.host.listdir("/sys/kernel/iommu_groups")
    if table is None or not virt.host.exists(f"/sys/firmware/acpi/tables/{table}") or groups is None:
        return Judgement(Verdict("PASS"), None, "no IOMMU the kernel could enable (virt.qemu_iommu says why)")
    if not groups:
        verdict = Verdict(level, "IOMMU appears to be disabled in kernel. Add "
                                 f"{'intel_iommu=on' if flag == 'vmx' else 'iommu=pt iommu=1'} to kernel cmdline arguments")
        return Judgement(verdict, verdict, "/sys/kernel/iommu_groups is empty")
    return Judgement(Verdict("PASS"), Verdict("PASS"), f"{len(groups)} IOMMU groups")


def _secure_guest(virt: VirtHost, level: str) -> Judgement:
    if "sev" in virt.cpu_flags:
        value = (virt.host.text("/sys/module/kvm_amd/parameters/sev") or "").strip()
        if not value:
            verdict = Verdict(level, "AMD Secure Encrypted Virtualization not supported by the currently used kernel")
        elif value[0] not in "1Y":
            verdict = Verdict(level, "AMD Secure Encrypted Virtualization appears to be disabled in kernel. "
                                     "Add kvm_amd.sev=1 to the kernel cmdline arguments")
        elif not virt.host.exists("/dev/sev"):
            verdict = Verdict(level, "AMD Secure Encrypted Virtualization appears to be disabled in firmware.")
        else:
            verdict = Verdict("PASS")
        return Judgement(verdict, verdict, f"CPU flag sev; kvm_amd.sev = {value or '(no such parameter)'}")
    verdict = Verdict(level, "Unknown if this platform has Secure Guest support")
    return Judgement(verdict, verdict, "no sev CPU flag (AMD SEV) and not s390x")


_LINE = re.compile(r"^\s*(QEMU|LXC|BHYVE|CH):\s+Checking (.+?)\s*:\s+(PASS|WARN|FAIL|NOTE)(?: \((.*)\))?\s*$")


class ToolLines:
    """What the real virt-host-validate printed on the host, by (driver, item label)."""

    def __init__(self, text: str | None) -> None:
        self.installed = text is not None
        self.lines: dict[tuple[str, str], str] = {}
        for line in (text or "").splitlines():
            match = _LINE.match(re.sub(r"\x1b\[[0-9;]*m", "", line))
            if match:
                self.lines[(match[1], match[2])] = line.strip()

    @classmethod
    def run(cls, host: Host = THIS_HOST) -> "ToolLines":
        if host.which("virt-host-validate") is None:
            return cls(None)
        return cls(host.run("virt-host-validate qemu; virt-host-validate lxc", timeout=60).stdout)

    def line(self, driver: str, says: str) -> str | None:
        """The tool's line for the item, or None where it printed none.

        >>> ToolLines("   LXC: Checking for namespace ipc      : PASS").line("LXC", "for namespace ipc")
        'LXC: Checking for namespace ipc      : PASS'
        """
        return self.lines.get((driver, says))

    def verdict(self, driver: str, says: str) -> str | None:
        line = self.line(driver, says)
        return _LINE.match(line)[3] if line else None
