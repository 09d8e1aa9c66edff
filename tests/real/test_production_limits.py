"""A production host's limits, on this machine: each lowered alone fails its
own check and nothing else (the running value, the value the next boot sets
from sysctl.d, a user's open-file limit), against a profile extending
`production` whose minimums are what this host has now."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from hoststate import HostState
from lxc_compliance.model.catalog import Catalog
from lxc_compliance.model.profiles import load

# It holds the host alone: the host-state group, run first (tests/conftest.py orders them).
pytestmark = [pytest.mark.changes_host, pytest.mark.xdist_group("host-state")]

CATALOG = Catalog.load()
PRODUCTION = load("production", CATALOG)
LIMITS_FILE = Path("/etc/security/limits.d/60-lxcc-test.conf")
PERSISTED_FILE = Path("/etc/sysctl.d/99-lxcc-test.conf")


def _now(key: str) -> int:
    return int(Path("/proc/sys", key.replace(".", "/")).read_text().split()[0])


def _production_sysctls() -> dict[str, str]:
    """check id -> sysctl, for the sysctls the production profile sets."""
    rules = PRODUCTION.setting("host.sysctl")
    return {c.id: c.sysctl for c in CATALOG.category("host")
            if c.sysctl in rules and Path("/proc/sys", c.sysctl.replace(".", "/")).exists()}


def _failed(folder: Path, profile: Path) -> set[str]:
    done = subprocess.run([sys.executable, "-m", "pytest", "checks", f"--profile={profile}", f"--report-dir={folder}",
                           "-m", "host"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-2000:]
    document = json.loads((folder / "site.json").read_text())
    return {c["id"] for c in document["checks"] if c["outcome"] in ("failed", "error")}


def test_each_production_limit_lowered_alone_fails_its_check(tmp_path):
    sysctls = _production_sysctls()
    assert {"host.max_map_count", "host.dmesg_restrict", "host.inotify_queued_events"} <= set(sysctls)
    with HostState() as state:
        # What this host has now is the floor; root's limits are set to what the profile asks.
        profile = tmp_path / "site.yaml"
        floors = "".join(f"    {key}: {{min: {max(_now(key), 1)}, per_container: 0, reserve: 0}}\n"
                         for key in sysctls.values())
        profile.write_text(f"extends: production\nhost:\n  sysctl:\n{floors}  limits: {{nofile: 65536, memlock: unlimited}}\n")
        state.write(LIMITS_FILE, "root - nofile 65536\nroot - memlock unlimited\n")
        baseline = _failed(tmp_path / "clean", profile)
        assert not baseline & (set(sysctls) | {"host.nofile", "host.memlock"}), baseline

        found, wanted = {}, {}
        for check, key in sysctls.items():
            value = _now(key)
            state.sysctl(key, value - 1)
            try:
                found[check] = _failed(tmp_path / check, profile) - baseline
            finally:
                state.sysctl(key, value)
            wanted[check] = {check}
        # The next boot lowers one: the running value is enough, the persisted one is not.
        key = sysctls["host.max_map_count"]
        state.write(PERSISTED_FILE, f"{key} = {_now(key) - 1}\n")
        found["persisted"] = _failed(tmp_path / "persisted", profile) - baseline
        wanted["persisted"] = {"host.max_map_count"}
        PERSISTED_FILE.unlink()
        # root's open files below the profile's.
        LIMITS_FILE.write_text("root - nofile 4096\nroot - memlock unlimited\n")
        found["nofile"] = _failed(tmp_path / "nofile", profile) - baseline
        wanted["nofile"] = {"host.nofile"}
    assert found == wanted
    document = json.loads((tmp_path / "persisted/site.json").read_text())
    row = next(c for c in document["checks"] if c["id"] == "host.max_map_count")
    assert "99-lxcc-test.conf:1 sets" in row["message"] and "next boot" in row["message"]
