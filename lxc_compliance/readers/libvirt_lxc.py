"""libvirt's LXC driver on a host: whether ``lxc:///system`` answers, and what it offers.

The Ubuntu server guide runs containers through libvirt (``virsh -c lxc:///``) as well
as through LXC's own tools. The driver is ready when a read-only connection opens and
its capabilities offer a container guest (os_type ``exe``, domain type ``lxc``) whose
emulator, libvirt's ``libvirt_lxc`` helper, is there. Read through ``virsh --readonly``
(libvirt-clients), its XML read with ElementTree: the connection is libvirt's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree import ElementTree

from lxc_compliance.readers.lxc import last_words
from lxc_compliance.readers.machine import THIS_HOST, Host


def virsh_error(text: str) -> str:
    """virsh's error lines in one, its generic first line left out where a specific one follows.

    >>> virsh_error("error: failed to connect to the hypervisor\\nerror: no connection driver available for lxc:///system\\n")
    'no connection driver available for lxc:///system'
    """
    lines = [line.strip().removeprefix("error: ") for line in text.splitlines() if line.strip()]
    specific = [line for line in lines if line != "failed to connect to the hypervisor"]
    return last_words("; ".join(specific or lines))


@dataclass(frozen=True)
class LibvirtLxc:
    """What ``virsh --readonly -c URI capabilities`` answered on a host."""

    uri: str
    # Why no answer came (virsh missing, the daemon or its driver not there), or None.
    error: str | None = None
    # The container guests offered: (arch, emulator).
    guests: tuple[tuple[str, str], ...] = ()
    # The security driver libvirt confines containers with ('none', 'apparmor', 'selinux').
    security: tuple[str, ...] = ()
    emulators_missing: tuple[str, ...] = ()

    @classmethod
    def read(cls, uri: str = "lxc:///system", host: Host = THIS_HOST) -> "LibvirtLxc":
        if host.which("virsh") is None:
            return cls(uri, "virsh is not installed (libvirt-clients)")
        done = host.run("virsh --readonly -c %s capabilities", uri, timeout=30)
        if done.rc != 0:
            return cls(uri, virsh_error(done.stderr or done.stdout) or f"virsh exited {done.rc}")
        return cls.parse(uri, done.stdout, host)

    @classmethod
    def parse(cls, uri: str, xml: str, host: Host = THIS_HOST) -> "LibvirtLxc":
        """URI's capabilities XML, each emulator looked for on HOST.

        >>> class Empty(Host):
        ...     def kind(self, path): return "N"
        >>> found = LibvirtLxc.parse("lxc:///system", "<capabilities><host><secmodel><model>none</model>"
        ...     "</secmodel></host><guest><os_type>exe</os_type><arch name='x86_64'><emulator>/usr/lib/libvirt/"
        ...     "libvirt_lxc</emulator><domain type='lxc'/></arch></guest></capabilities>", Empty())
        >>> found.guests, found.security, found.emulators_missing
        ((('x86_64', '/usr/lib/libvirt/libvirt_lxc'),), ('none',), ('/usr/lib/libvirt/libvirt_lxc',))
        """
        try:
            root = ElementTree.fromstring(xml)
        except ElementTree.ParseError as exc:
            return cls(uri, f"virsh printed no capabilities XML ({exc})")
        guests = tuple(
            (arch.get("name", "?"), (arch.findtext("emulator") or "").strip())
            for guest in root.iter("guest") if (guest.findtext("os_type") or "").strip() == "exe"
            for arch in guest.iter("arch") if any(d.get("type") == "lxc" for d in arch.iter("domain")))
        security = tuple((m.text or "").strip() for m in root.iterfind("host/secmodel/model"))
        missing = tuple(sorted({emulator for _, emulator in guests if emulator and not host.is_file(emulator)}))
        return cls(uri, None, guests, security, missing)

    @property
    def problem(self) -> str | None:
        """Why containers cannot run through the driver, or None."""
        if self.error:
            return f"libvirt's LXC driver does not answer on {self.uri}: {self.error}"
        if not self.guests:
            return f"{self.uri} answers but offers no container guest (os_type exe, domain type lxc)"
        if self.emulators_missing:
            return f"{self.uri} offers containers, but its helper {', '.join(self.emulators_missing)} is missing"
        return None

    def describe(self) -> str:
        if self.error:
            return self.error
        offered = ", ".join(f"{arch} through {emulator}" for arch, emulator in self.guests) or "no container guest"
        return f"{self.uri}: {offered}; security driver {', '.join(self.security) or 'none'}"
