"""The unified-host checks on recorded states of a Debian 12 and a Debian 13 host as
installed (tests/unit/states/*.json: every file says where its facts come from), which this
machine (no systemd as PID 1, cgroup v1 controllers) cannot be put in; and one fault at a
time, each failing its own check."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import checks.test_host as host_checks
from lxc_compliance.model.catalog import Catalog
from lxc_compliance.model.profiles import load
from lxc_compliance.plugin.run import Observation
from lxc_compliance.readers.cgroup_dialect import HostDialect, applied_limit
from lxc_compliance.readers.cgroups import Cgroups
from lxc_compliance.readers.formats import LxcConfig
from lxc_compliance.readers.user_manager import UserManager
from recorded_host import RecordedHost

# The unit tier (./lxcc test --unit): no root, no container, no network.
pytestmark = pytest.mark.unit

STATES = Path(__file__).parent / "states"
CATALOG = Catalog.load()
WORKSHOP = load("workshop", CATALOG)


@pytest.fixture(params=sorted(p.stem for p in STATES.glob("*.json")))
def recorded(request) -> RecordedHost:
    state = json.loads((STATES / f"{request.param}.json").read_text())
    assert state["sources"], "a recorded state says where its facts come from"
    return RecordedHost(state["files"], state["commands"])


def _check(check_id: str, *args):
    getattr(host_checks, CATALOG.by_id[check_id].test)(CATALOG.by_id[check_id], *args, Observation())


def _manager(host) -> UserManager:
    return UserManager(host, "inst", 1000)


def test_as_installed_the_memory_controller_and_the_delegation_pass(recorded):
    cgroups = Cgroups(recorded.files["/proc/self/mounts"], recorded)
    assert cgroups.layout == "unified" and cgroups.controller_problem("memory") is None
    assert HostDialect(cgroups.layout).applied == "lxc.cgroup2"
    _check("host.user_delegation", WORKSHOP, _manager(recorded))
    _check("host.user_slice_tasks_max", WORKSHOP, _manager(recorded))


def test_the_recipe_limits_are_ignored_there(recorded):
    """The recipe's lxc.cgroup.memory.* lines set nothing on these hosts; its cgroup2 lines would."""
    dialect = HostDialect(Cgroups(recorded.files["/proc/self/mounts"], recorded).layout)
    recipe = LxcConfig.parse("lxc.cgroup.memory.limit_in_bytes = 512M\nlxc.cgroup.memory.memsw.limit_in_bytes = 1G\n", "pc1")
    found = applied_limit(recipe.entries, "memsw", dialect)
    assert found.configured is None
    assert "(here: lxc.cgroup2.memory.swap.max = 512M)" in found.problem(1 << 30, "pc1")
    assert "Ignoring legacy cgroup limits on pure cgroup2 system" in found.problem(1 << 30, "pc1")


def test_the_recipe_autostart_fails_without_linger_and_delegation(recorded):
    """'@reboot lxc-autostart' from cron lands in cron's cgroup on these hosts."""
    user = SimpleNamespace(autostart_line="@reboot lxc-autostart")
    with pytest.raises(AssertionError, match="does not linger"):
        _check("host.user_autostart_delegated", user, _manager(recorded))
    recorded.files["/var/lib/systemd/linger/inst"] = ""
    with pytest.raises(AssertionError, match="starts the containers in cron's cgroup"):
        _check("host.user_autostart_delegated", user, _manager(recorded))
    _check("host.user_autostart_delegated",
           SimpleNamespace(autostart_line="@reboot systemd-run --user --scope -p Delegate=yes lxc-autostart"),
           _manager(recorded))


def test_memory_not_delegated_fails_naming_it(recorded):
    recorded.commands["systemctl show -p DelegateControllers --value user@1000.service"] = "pids"
    with pytest.raises(AssertionError, match="not delegated memory"):
        _check("host.user_delegation", WORKSHOP, _manager(recorded))


def test_without_a_running_manager_the_unit_files_are_read(recorded):
    """The same verdicts from the unit files alone (an image checked before it boots)."""
    del recorded.files["/run/systemd/system/.present"]
    manager = _manager(recorded)
    assert manager.delegated_controllers == {"pids", "memory", "cpu"}
    assert manager.slice_tasks_max_setting == "33%"
    recorded.files["/etc/systemd/system/user@.service.d/delegate.conf"] = "[Service]\nDelegate=pids\n"
    assert _manager(recorded).delegated_controllers == {"pids", "memory", "cpu"}, "a list adds to the unit's"
    recorded.files["/etc/systemd/system/user@.service.d/delegate.conf"] = "[Service]\nDelegate=\nDelegate=pids\n"
    assert _manager(recorded).delegated_controllers == {"pids"}, "an empty Delegate= resets it"


def test_a_small_user_slice_fails(recorded):
    recorded.commands["systemctl show -p TasksMax --value user-1000.slice"] = "4096"
    with pytest.raises(AssertionError, match="allows 4096 tasks; 12288 are needed"):
        _check("host.user_slice_tasks_max", WORKSHOP, _manager(recorded))


def test_memory_bound_elsewhere_is_the_memory_controller_failure(recorded):
    recorded.files["/sys/fs/cgroup/cgroup.controllers"] = "cpuset cpu io hugetlb pids rdma misc\n"
    problem = Cgroups(recorded.files["/proc/self/mounts"], recorded).controller_problem("memory")
    assert problem and "not memory" in problem


def test_a_layout_forced_back_to_v1_is_named(recorded):
    """A unified-capable host booted with systemd.unified_cgroup_hierarchy=0 (hybrid): the warning names the parameter."""
    recorded.files["/proc/cmdline"] = "root=/dev/vda1 systemd.unified_cgroup_hierarchy=0 quiet\n"
    hybrid = ("cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n"
              "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n")
    cgroups = Cgroups(hybrid, recorded)
    with pytest.raises(AssertionError, match=r"hybrid cgroup layout \(systemd.unified_cgroup_hierarchy=0 \(running\)\)"):
        _check("host.cgroup_layout", recorded, cgroups, HostDialect(cgroups.layout))
