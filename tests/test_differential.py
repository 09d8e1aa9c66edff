"""The suite against Debian's real /usr/bin/lxc-checkconfig, config by config.

Two claims are tested on every synthetic and real Debian config:
1. the in-process port prints exactly what the script prints, line for line;
2. a suite run with --kernel-config gives every "Label: verdict" line of the
   script to exactly one check's ``lxc_checkconfig`` field.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from configs import SYNTHETIC
from conftest import run_real_script
from lxc_compliance.readers import checkconfig
from lxc_compliance.readers.lxc import local_lxc_version as _lxc_version


@pytest.fixture(scope="module")
def script_host() -> checkconfig.ScriptHost:
    return checkconfig.ScriptHost.live(_lxc_version())


@pytest.fixture(params=sorted(SYNTHETIC), scope="module")
def synthetic_config(request, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("configs") / request.param
    path.write_bytes(SYNTHETIC[request.param])
    return path


def _agree_line_for_line(script: str, config: Path, host: checkconfig.ScriptHost) -> None:
    real = run_real_script(script, config)
    emulated = checkconfig.run(host, str(config)).lines
    assert emulated == real


def _every_item_matched_once(script: str, config: Path, suite) -> dict:
    result = suite.run(f"--kernel-config={config}", "-q")
    assert result.returncode in (0, 1), result.stdout + result.stderr
    document = suite.results()
    fields = [c["lxc_checkconfig"] for c in document["checks"] if c.get("lxc_checkconfig")]
    items = checkconfig.items(run_real_script(script, config))
    assert items, "the script printed no item at all"
    for label, line in items.items():
        assert fields.count(line) == 1, f"{label!r}: {line!r} is carried by {fields.count(line)} checks"
    for field in fields:
        assert field in items.values(), f"no such line in the script's output: {field!r}"
    return document


def test_port_agrees_on_synthetic_configs(lxc_checkconfig, synthetic_config, script_host):
    _agree_line_for_line(lxc_checkconfig, synthetic_config, script_host)


def test_port_agrees_on_debian_configs(lxc_checkconfig, debian_configs, script_host):
    for config in debian_configs:
        _agree_line_for_line(lxc_checkconfig, config, script_host)


def test_port_agrees_on_the_running_kernel(lxc_checkconfig, script_host):
    located = checkconfig.run(script_host).config_path
    assert located is not None, "this host has no kernel config where lxc-checkconfig looks"
    _agree_line_for_line(lxc_checkconfig, Path(located), script_host)


def test_suite_carries_every_item_on_synthetic_configs(lxc_checkconfig, synthetic_config, suite):
    _every_item_matched_once(lxc_checkconfig, synthetic_config, suite)


def test_suite_carries_every_item_on_debian_configs(lxc_checkconfig, debian_configs, suite):
    for config in debian_configs:
        document = _every_item_matched_once(lxc_checkconfig, config, suite)
        notes = [c["id"] for c in document["checks"] if "note" in c]
        assert notes == [], f"{config.name}: the suite and the script disagree on {notes}"


def _check(document: dict, check_id: str) -> dict:
    return next(c for c in document["checks"] if c["id"] == check_id)


@pytest.mark.parametrize(
    ("name", "check_id", "script_line", "outcome", "reason"),
    [
        ("10.1.0", "kernel.cgroup_memory", "Cgroup memory controller: missing", "passed", "single-digit"),
        ("2.6.32-old-header", "kernel.cgroup_memory", "Cgroup memory controller: missing", "passed", "assumed the latest"),
        ("2.6.32-old-header", "kernel.config_version",
         "WARNING: Unable to detect version from configuration, assuming latest", "passed", "assumed the latest"),
        ("commented-out", "kernel.user_namespace", "User namespace: enabled", "warned", "# CONFIG_USER_NS=y was here"),
        ("pipe-value", "kernel.veth", "Veth pair device: enabled", "warned", "CONFIG_VETH=|"),
    ],
)
def test_suite_is_right_where_the_script_is_wrong(
    lxc_checkconfig, tmp_path, suite, name, check_id, script_line, outcome, reason
):
    config = tmp_path / name
    config.write_bytes(SYNTHETIC[name])
    check = _check(_every_item_matched_once(lxc_checkconfig, config, suite), check_id)
    assert check["lxc_checkconfig"] == script_line
    assert check["outcome"] == outcome
    assert reason in check["note"]


def test_old_kernels_get_the_items_the_script_skips(lxc_checkconfig, tmp_path, suite):
    """A 2.6.32 config with the pre-2.6.35 header: the script assumes the latest
    kernel and skips /dev/pts; the suite knows the version and checks it."""
    config = tmp_path / "old"
    config.write_bytes(SYNTHETIC["2.6.32-old-header"])
    document = _every_item_matched_once(lxc_checkconfig, config, suite)
    devpts = _check(document, "kernel.devpts_multiple_instances")
    assert devpts["lxc_checkconfig"] is None
    assert devpts["outcome"] == "passed"
