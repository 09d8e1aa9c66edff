"""Unit tests of the host file parsers, and of host checks in states this
machine cannot be put in (a pending reboot, no swap accounting, KVM), on a
recorded host."""

from __future__ import annotations

import pytest
from recorded_host import RecordedHost

import checks.test_host as host_checks
from lxc_compliance.model.catalog import Catalog
from lxc_compliance.readers.formats import (
    LxcConfig,
    crontab_has,
    grub_cmdline,
    pam_cgfs_controllers,
    parse_size,
    parse_subids,
    parse_usernet,
    resolve_tasks_max,
    systemd_setting,
)
from lxc_compliance.plugin.run import Observation
from lxc_compliance.readers.machine import Result
from lxc_compliance.model.profiles import load

# The unit tier (./lxcc test --unit): no root, no container, no network.
pytestmark = pytest.mark.unit

CATALOG = Catalog.load()


def test_subids_cover_and_overlap():
    ranges = parse_subids("inst:100000:65536\nbad line\nother:165536:65536\nroot:1000:1\n")
    assert [r.owner for r in ranges] == ["inst", "other", "root"]
    inst, other, _ = ranges
    assert inst.covers(100000, 65536) and not inst.covers(100000, 65537)
    assert not inst.overlaps(other)
    assert inst.overlaps(parse_subids("x:165535:10")[0])


def test_lxc_config_understands_legacy_and_current_keys():
    legacy = LxcConfig.parse(
        "# seed 000\nlxc.id_map = u 0 100000 65536\nlxc.id_map = g 0 100000 65536\n"
        "lxc.network.type = veth\nlxc.network.link = br0\nlxc.network.type = veth\nlxc.network.link = br1\n"
        "lxc.cgroup.memory.limit_in_bytes = 512M\n"
    )
    assert legacy.idmaps() == [("u", 0, 100000, 65536), ("g", 0, 100000, 65536)]
    assert legacy.get("lxc.net.0.link") == "br0" and legacy.get("lxc.net.1.link") == "br1"
    assert [e.key for e in legacy.legacy_entries()] == ["lxc.id_map"] * 2 + ["lxc.network.type", "lxc.network.link"] * 2
    assert legacy.get("lxc.cgroup.memory.limit_in_bytes") == "512M"
    current = LxcConfig.parse("lxc.idmap = u 0 100000 65536\nlxc.net.0.type = veth\nlxc.include = /x.conf\n")
    assert current.legacy_entries() == [] and current.includes == ["/x.conf"]
    assert LxcConfig.parse("lxc.network.0.link = br9\n").get("lxc.net.0.link") == "br9"


def test_grub_cmdline_reads_both_variables_and_expansions():
    text = 'GRUB_CMDLINE_LINUX="console=ttyS0"\nGRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT quiet cgroup_enable=memory swapaccount=1"\n'
    assert grub_cmdline([text]) == ["console=ttyS0", "quiet", "cgroup_enable=memory", "swapaccount=1"]
    assert grub_cmdline([text, 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n']) == ["console=ttyS0", "quiet"]


def test_pam_cgfs_controllers():
    assert pam_cgfs_controllers("session\toptional\tpam_cgfs.so -c freezer,memory,name=systemd,devices\n") == {
        "freezer", "memory", "name=systemd", "devices"}
    assert pam_cgfs_controllers("# session optional pam_cgfs.so -c devices\n") is None
    assert pam_cgfs_controllers("session optional pam_unix.so\n") is None


def test_usernet_and_crontab():
    grants = parse_usernet("# comment\ninst veth br0 60\n@students veth br0 10\nbad\n")
    assert [(g.user, g.count) for g in grants] == [("inst", 60), ("@students", 10)]
    assert crontab_has("# m h dom mon dow command\n@reboot lxc-autostart\n", "@reboot", "lxc-autostart")
    assert crontab_has("@reboot /usr/bin/lxc-autostart -g workshop\n", "@reboot", "lxc-autostart")
    assert crontab_has("#@reboot lxc-autostart\n", "@reboot", "lxc-autostart") is None


def test_systemd_settings_and_task_limits():
    texts = ["[Manager]\n#DefaultTasksMax=15%\n", "[Manager]\nDefaultTasksMax=12288\n"]
    assert systemd_setting(texts, "Manager", "DefaultTasksMax") == "12288"
    assert systemd_setting(texts[:1], "Manager", "DefaultTasksMax") is None
    assert resolve_tasks_max(None, 32768) == 4915
    assert resolve_tasks_max("50%", 1000) == 500


def test_sizes():
    assert parse_size("512M") == 512 << 20 and parse_size("1G") == 1 << 30 and parse_size("512MiB") == 512 << 20


def test_profile_derives_sysctl_minimums():
    workshop = load("workshop", CATALOG)
    assert workshop.containers == 40
    assert workshop.sysctl_minimum("fs.inotify.max_user_instances") == 40 * 6 + 16
    assert workshop.sysctl_minimum("fs.aio-max-nr") == 1000000
    assert workshop.sysctl_minimum("fs.inotify.max_user_watches") == 40 * 1024 + 8192
    assert load("host", CATALOG).sysctl_minimum("fs.inotify.max_user_instances") == 128
    assert workshop.sysctl_minimum("no.such.key") is None


# --- checks in states this machine cannot reach ------------------------------


FakeHost = RecordedHost


WORKSHOP = load("workshop", CATALOG)
NO_SWAP = {"/proc/cgroups": "#subsys_name\thierarchy\tnum_cgroups\tenabled\nmemory\t4\t1\t0\n", "/proc/cmdline": "quiet"}


def test_reboot_pending_is_said_clearly():
    host = FakeHost({**NO_SWAP, "/etc/default/grub": 'GRUB_CMDLINE_LINUX_DEFAULT="cgroup_enable=memory swapaccount=1"\n'})
    with pytest.raises(AssertionError, match="a reboot is pending"):
        host_checks.test_kernel_cmdline(CATALOG.by_id["host.kernel_cmdline"], host, WORKSHOP, Observation())


def test_kernel_without_memory_accounting_fails():
    with pytest.raises(AssertionError, match="lacks cgroup_enable=memory swapaccount=1"):
        host_checks.test_kernel_cmdline(CATALOG.by_id["host.kernel_cmdline"], FakeHost(NO_SWAP), WORKSHOP, Observation())
    with pytest.raises(AssertionError, match="memory controller is disabled"):
        host_checks.test_swap_accounting(CATALOG.by_id["host.swap_accounting"], FakeHost(NO_SWAP), Observation())


def test_kvm_host_passes_virtualization():
    host = FakeHost({"/proc/cpuinfo": "flags\t\t: fpu vme vmx sse\n", "/dev/kvm": ""})
    observed = Observation()
    host_checks.test_virtualization(CATALOG.by_id["host.virtualization"], host, observed)
    assert observed.actual == "/dev/kvm present; CPU flags: vmx"
    with pytest.raises(AssertionError, match="/dev/kvm is missing"):
        host_checks.test_virtualization(CATALOG.by_id["host.virtualization"], FakeHost({"/proc/cpuinfo": "flags : svm"}), observed)


def test_user_namespaces_forbidden():
    """user.max_user_namespaces = 0 (read-only in the sandbox, so a fake host)."""
    host = FakeHost({"/proc/sys/user/max_user_namespaces": "0\n"})
    with pytest.raises(AssertionError, match="user.max_user_namespaces is 0; 40 containers need at least 80"):
        host_checks.test_sysctl_minimum(CATALOG.by_id["host.user_namespaces"], host, WORKSHOP, {}, Observation())


# --- production limits: what the next boot and a login session get -----------------------

PRODUCTION = load("production", CATALOG)


def test_a_persisted_sysctl_below_the_minimum_fails_although_the_running_value_is_enough():
    from lxc_compliance.readers.tuning import parse_sysctl_conf

    host = FakeHost({"/proc/sys/vm/max_map_count": "262144\n"})
    persisted = parse_sysctl_conf("vm.max_map_count = 65530\n", "/etc/sysctl.d/10-old.conf")
    observed = Observation()
    with pytest.raises(AssertionError, match=r"/etc/sysctl.d/10-old.conf:1 sets 65530: the next boot lowers it"):
        host_checks.test_sysctl_minimum(CATALOG.by_id["host.max_map_count"], host, PRODUCTION, persisted, observed)
    assert observed.actual == "vm.max_map_count = 262144"


class GrepHost(RecordedHost):
    """A recorded host that answers the tuning readers' one command, `grep -Hn '' PATTERNS`."""

    def run(self, command: str, *args, timeout=None):
        import fnmatch

        patterns = command.removeprefix("grep -Hn '' ").removesuffix(" 2>/dev/null").split()
        out = [f"{path}:{number}:{line}" for pattern in patterns
               for path in sorted(p for p in self.files if fnmatch.fnmatch(p, pattern))
               for number, line in enumerate(self.files[path].splitlines(), start=1)]
        return Result(0, "\n".join(out))


def test_sysctl_d_order_is_systemd_sysctls():
    """A name in /etc/sysctl.d hides the same name in /usr/lib/sysctl.d; files apply by name; sysctl.conf last."""
    from lxc_compliance.readers.tuning import persisted_sysctls

    host = GrepHost({
        "/usr/lib/sysctl.d/50-pid-max.conf": "kernel.pid_max = 4194304\n",
        "/usr/lib/sysctl.d/60-lxc.conf": "vm.max_map_count = 1\n",
        "/etc/sysctl.d/60-lxc.conf": "vm.max_map_count = 262144\nkernel.pid_max = 32768\n",
        "/etc/sysctl.d/70-late.conf": "-fs/inotify/max_queued_events = 1048576\n",
        "/etc/sysctl.conf": "kernel.pid_max = 65536\n",
    })
    found = {key: (s.value, s.where) for key, s in persisted_sysctls(host).items()}
    assert found == {"vm.max_map_count": ("262144", "/etc/sysctl.d/60-lxc.conf:1"),
                     "kernel.pid_max": ("65536", "/etc/sysctl.conf:1"),
                     "fs.inotify.max_queued_events": ("1048576", "/etc/sysctl.d/70-late.conf:1")}


@pytest.mark.parametrize("lines, user, expected", [
    ("* soft nofile 1048576\n* hard nofile 1048576\n", "root", {"soft": None, "hard": None}),  # * is never root's
    ("* - nofile 1024\ninst - nofile 1048576\n", "inst", {"soft": "1048576", "hard": "1048576"}),
    ("inst - nofile 1048576\n* - nofile 1024\n", "inst", {"soft": "1048576", "hard": "1048576"}),  # specific wins
    ("@lxc soft nofile 4096\n* soft nofile 8192\n", "inst", {"soft": "4096", "hard": None}),  # group beats *
    ("inst soft nofile 10\ninst soft nofile 20\n", "inst", {"soft": "20", "hard": None}),  # the last read
])
def test_session_limit_as_pam_limits_applies_it(lines, user, expected):
    from lxc_compliance.readers.tuning import parse_limits, session_limit

    found = session_limit(parse_limits(lines, "limits.conf"), user, {"lxc"}, "nofile")
    assert {kind: line.value if line else None for kind, line in found.items()} == expected


def test_user_limits_name_each_user_and_kind_that_falls_short():
    from lxc_compliance.readers.tuning import parse_limits

    lines = parse_limits("* - nofile 1048576\nroot soft nofile 1048576\n", "/etc/security/limits.d/60-lxc.conf")
    with pytest.raises(AssertionError, match=r"^root's hard nofile is not set \(at least 1048576 wanted\)"):
        host_checks.test_user_limit(CATALOG.by_id["host.nofile"], PRODUCTION, lines, {"root": set(), "inst": set()},
                                    Observation())


def test_limits_d_after_limits_conf_by_name():
    from lxc_compliance.readers.tuning import limits_lines

    host = GrepHost({"/etc/security/limits.d/90-b.conf": "root - nofile 20\n",
                     "/etc/security/limits.d/10-a.conf": "root - nofile 10\n",
                     "/etc/security/limits.conf": "# stock\nroot - nofile 5\n"})
    assert [line.where for line in limits_lines(host)] == [
        "/etc/security/limits.conf:2", "/etc/security/limits.d/10-a.conf:1", "/etc/security/limits.d/90-b.conf:1"]


@pytest.mark.parametrize("files", [{}, {"/home/inst/.local/share/lxc/other/config": ""}],
                         ids=["no lxcpath yet", "another container only"])
def test_the_room_without_its_gold_says_the_gold_is_missing(files):
    """An owner who has made no container yet has no lxcpath: that is still a missing gold."""
    from lxc_compliance.readers.room import planned_fleet_room

    why = planned_fleet_room(RecordedHost(files), "/home/inst/.local/share/lxc", "gold", 40, "copy", 0)
    assert why.startswith("there is no gold container gold "), why


def test_the_lab_s_own_delegation_is_no_host_check_and_the_workshop_s_is():
    """lab-unprivileged adds devices to the pam_cgfs line for its own user and takes it out after:
    a stock host's line is no failure there (as it was on a fresh machine), while a workshop host's is checked."""
    from types import SimpleNamespace

    from lxc_compliance.plugin.settings import delegated_controllers

    check = CATALOG.by_id["host.pam_cgfs"]
    lab = load("lab-unprivileged", CATALOG)
    assert check.not_applicable(None, SimpleNamespace(layout="hybrid"), lab) == "the profile sets no host.pam_cgfs_controllers"
    assert "devices" in delegated_controllers(lab)
    assert check.not_applicable(None, SimpleNamespace(layout="hybrid"), WORKSHOP) is None and "devices" in delegated_controllers(WORKSHOP)


def test_the_dhcp_port_names_who_answers_on_the_bridge_and_who_should_not():
    """Of the sockets on UDP 67: those the bridge's requests reach, and which of their processes are strangers."""
    from lxc_compliance.readers.dnsmasq import DnsmasqConfig, DnsmasqProcess
    from lxc_compliance.readers.host_network import HostNetwork
    from lxc_compliance.readers.machine import Link, UdpSocket

    sockets = [UdpSocket("0.0.0.0", "br0", 10, "dnsmasq", 67), UdpSocket("0.0.0.0", None, 20, "dnsmasq", 67),
               UdpSocket("0.0.0.0", "lxcbr0", 30, "dnsmasq", 67)]

    class Recorded(HostNetwork):
        def dhcp_sockets(self):
            return sockets

    bridge = Link("br0", True, "bridge", True, 1500, 0.0, False, (), ("10.0.3.1/24",))
    own = DnsmasqProcess(10, ["dnsmasq", "--interface=br0"], DnsmasqConfig.from_cmdline(["dnsmasq", "--interface=br0"]))
    port = Recorded(RecordedHost({})).dhcp_port(bridge, [own])
    assert [s.pid for s in port.answering] == [10, 20] and port.holders == {10, 20}
    assert [s.pid for s in port.strangers] == [20]
    alone = Recorded(RecordedHost({}))
    sockets[1:] = sockets[2:]
    assert alone.dhcp_port(bridge, [own]).holders == {10} and not alone.dhcp_port(bridge, [own]).strangers
