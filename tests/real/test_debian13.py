"""Debian 13 for real, and the upgrade from Debian 12 the operators gate.

A Debian 13 userland (its LXC 6.0.4, Python 3.13) in a privileged nesting container
of this machine runs the kernel, host and lab profiles with its own LXC, and one lab
sample starts nested; then a Debian 12 container host with a small fleet is audited,
upgraded with apt, and audited again against the first run's baseline.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import LAB_GOLD, own_host_keys
from lxc_compliance.lab.samples import random_mac
from lxc_compliance.readers.lxc import LXC_PATH
from hoststate import HostState
from nested import NestedHost


# Inside a container the init network namespace's neighbour table is the host's: its
# gc_thresh sysctls do not exist there, and the host checks say so.
CONTAINER_ONLY = {"host.neigh_gc_thresh2", "host.neigh_gc_thresh3"}


# What a privileged container's systemd-sysctl once changed on this machine (Debian 13's
# sysctl.d): the nested hosts must leave every one of them as it was.
WATCHED_SYSCTLS = ("fs/inotify/max_user_instances", "fs/inotify/max_user_watches", "vm/max_map_count",
                   "kernel/core_uses_pid", "kernel/pid_max", "fs/protected_regular", "fs/protected_fifos")

# It holds the host shared: run after the tests that hold it alone (tests/conftest.py).
pytestmark = pytest.mark.shares_host


def _sysctls() -> dict[str, str]:
    return {key: (Path("/proc/sys") / key).read_text().strip() for key in WATCHED_SYSCTLS}


@pytest.fixture(autouse=True)
def _sysctls_as_found():
    """The host shared (a nested host is the test's own container), its sysctls read
    inside that hold, where no other test may change them."""
    with HostState(shared=True):
        before = _sysctls()
        yield
        assert _sysctls() == before, "a nested host changed this machine's sysctls"


def _failed(document: dict) -> set[str]:
    return {c["id"].rsplit(".s", 1)[0] if ".s0" in c["id"] else c["id"]
            for c in document["checks"] if c["outcome"] in ("failed", "error")}


def test_debian_13_runs_the_profiles_and_a_nested_sample(lab_gold):
    with NestedHost("trixie") as nested:
        nested.copy_container(LXC_PATH / LAB_GOLD)
        kernel = nested.lxcc("--profile=kernel", "-q")
        assert kernel.returncode == 0, kernel.stdout[-3000:]
        facts = nested.results("kernel")["host"]
        assert facts["distribution"].startswith("Debian GNU/Linux 13") and facts["lxc_version"].startswith("6.0")
        assert facts["checkconfig"] == "6.0"
        lines = {c["id"]: c.get("lxc_checkconfig") for c in nested.results("kernel")["checks"]}
        assert lines["kernel.user_namespace_limit"].startswith("  user: "), "LXC 6.0's Namespace limits block"
        host = nested.lxcc("--profile=host", "-q")
        assert host.returncode in (0, 1), host.stdout[-3000:]
        assert _failed(nested.results("host")) <= CONTAINER_ONLY | {"host.keys_maxkeys", "host.keys_maxbytes"}
        lab = nested.lxcc("--profile=lab", "--samples=1", "-q", timeout=900)
        assert lab.returncode in (0, 1), lab.stdout[-3000:]
        document = nested.results("lab")
        assert _failed(document) <= CONTAINER_ONLY, {c["id"]: c.get("message") for c in document["checks"]
                                                     if c["outcome"] in ("failed", "error")}
        checks = {c["id"]: c for c in document["checks"]}
        assert checks["containers.ssh_login.s01"]["outcome"] == "passed"
        assert checks["containers.memory_limit.s01"]["outcome"] == "passed"
        assert checks["network.dhcp_exchange"]["outcome"] == "passed"
        unit = nested.lxcc("test", "--unit", "-q", "-p", "no:cacheprovider", timeout=900)
        assert unit.returncode == 0, unit.stdout[-3000:]


FLEET_PROFILE = """extends: {project}/profiles/host.yaml
categories: [kernel, host, fleet]
host: {{containers: 2}}
fleet: {{pattern: "pc*", lxcpaths: [root], memory_limit: 512M, memsw_limit: 1G}}
checks:
  host.neigh_gc_thresh2: {{required: false}}
  host.neigh_gc_thresh3: {{required: false}}
  host.keys_maxkeys: {{required: false}}
  host.keys_maxbytes: {{required: false}}
"""


def test_the_upgrade_from_debian_12_to_13_is_gated(lab_gold):
    with NestedHost("bookworm") as nested:
        lab_gold.prepare("student", None, "512M", "1G")  # other runs prepare the shared gold with their own limits
        nested.copy_container(LXC_PATH / LAB_GOLD)
        for name in ("pc1", "pc2"):  # the recipe's copies: a MAC of the event's prefix, keys of their own
            done = nested.run(f"lxc-copy -n {LAB_GOLD} -N {name} && printf 'lxc.start.auto = 1\\nlxc.net.0.hwaddr = "
                              f"{random_mac('52:56')}\\n' >> /var/lib/lxc/{name}/config")
            assert done.returncode == 0, done.stderr
            own_host_keys(nested.rootfs / "var/lib/lxc" / name / "rootfs")
        profile = nested.put("/root/event.yaml", FLEET_PROFILE.format(project="/root/lxc-compliance"))
        before = nested.lxcc(f"--profile={profile}", "--report-dir=/root/before", "-q")
        assert before.returncode == 0, before.stdout[-3000:]
        nested.upgrade_to("trixie")
        after = nested.lxcc(f"--profile={profile}", "--baseline=/root/before/event.json", "--report-dir=/root/after", "-q")
        assert after.returncode in (0, 1), after.stdout[-3000:] + after.stderr[-3000:]
        document = nested.results("event", "/root/after")
        gate = document["baseline"]
        print(after.stdout[-4000:])
        changed = "\n".join(gate["changed"])
        assert "lxc_version 5.0.2 -> 6.0.4" in changed, changed
        assert "checkconfig 5.0 -> 6.0" in changed and "Debian GNU/Linux 13" in changed
        assert "prints a new item for kernel.user_namespace_limit" in changed
        assert gate["new"] == [], {c["id"]: c.get("message") for c in document["checks"] if c["id"] in gate["new"]}
        assert after.returncode == 0, after.stdout[-3000:]
