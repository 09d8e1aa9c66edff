"""The suite against the real lxc-checkconfig of each LXC release it reproduces
(5.0.2 from Debian 12's lxc package, 6.0.4 from Debian 13's), config by config.

Two claims are tested on every synthetic and real Debian config, for each release:
1. the in-process port prints exactly what the script prints, line for line;
2. a suite run with --kernel-config (and --checkconfig-version) gives every
   "Label: verdict" line of the script to exactly one check's ``lxc_checkconfig`` field.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from configs import SYNTHETIC
from conftest import CHECKCONFIG_RELEASES, run_real_script
from lxc_compliance.readers import checkconfig
from lxc_compliance.readers.target import Target


@pytest.fixture(params=sorted(CHECKCONFIG_RELEASES), scope="module")
def release(request) -> str:
    """The lxc-checkconfig release under comparison ('5.0', '6.0')."""
    return request.param


@pytest.fixture(scope="module")
def script(checkconfig_scripts, release) -> str:
    return str(checkconfig_scripts[release])


@pytest.fixture(scope="module")
def script_host(release) -> checkconfig.ScriptHost:
    return checkconfig.ScriptHost.live(Target("local://").lxc_version, release)


@pytest.fixture(params=sorted(SYNTHETIC), scope="module")
def synthetic_config(request, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("configs") / request.param
    path.write_bytes(SYNTHETIC[request.param])
    return path


def _agree_line_for_line(script: str, config: Path, host: checkconfig.ScriptHost) -> None:
    real = run_real_script(script, config)
    emulated = checkconfig.run(host, str(config)).lines
    assert emulated == real


def _every_item_matched_once(script: str, config: Path, suite, release: str) -> dict:
    result = suite.run(f"--kernel-config={config}", f"--checkconfig-version={release}", "-q")
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


def test_port_agrees_on_synthetic_configs(script, synthetic_config, script_host):
    _agree_line_for_line(script, synthetic_config, script_host)


def test_port_agrees_on_debian_configs(script, debian_configs, script_host):
    for config in debian_configs:
        _agree_line_for_line(script, config, script_host)


def test_the_installed_script_is_the_one_its_release_ships(lxc_checkconfig, checkconfig_scripts):
    """The port follows the installed LXC's script by default: that script is one of those compared here."""
    release = checkconfig.ScriptHost.live(Target("local://").lxc_version).version.release
    assert Path(lxc_checkconfig).read_bytes() == checkconfig_scripts[release].read_bytes()


def test_port_agrees_on_the_running_kernel(script, script_host):
    located = checkconfig.run(script_host).config_path
    assert located is not None, "this host has no kernel config where lxc-checkconfig looks"
    _agree_line_for_line(script, Path(located), script_host)


def test_suite_carries_every_item_on_synthetic_configs(script, synthetic_config, suite, release):
    _every_item_matched_once(script, synthetic_config, suite, release)


def test_suite_carries_every_item_on_debian_configs(script, debian_configs, suite, release):
    for config in debian_configs:
        document = _every_item_matched_once(script, config, suite, release)
        notes = [c["id"] for c in document["checks"] if c.get("note")]
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
def test_suite_is_right_where_the_5_0_script_is_wrong(
    checkconfig_scripts, tmp_path, suite, name, check_id, script_line, outcome, reason
):
    config = tmp_path / name
    config.write_bytes(SYNTHETIC[name])
    check = _check(_every_item_matched_once(checkconfig_scripts["5.0"], config, suite, "5.0"), check_id)
    assert check["lxc_checkconfig"] == script_line
    assert check["outcome"] == outcome
    assert reason in check["note"]


def test_old_kernels_get_the_items_the_script_skips(script, tmp_path, suite, release):
    """A 2.6.32 config with the pre-2.6.35 header: the script assumes the latest
    kernel and skips /dev/pts; the suite knows the version and checks it."""
    config = tmp_path / "old"
    config.write_bytes(SYNTHETIC["2.6.32-old-header"])
    document = _every_item_matched_once(script, config, suite, release)
    devpts = _check(document, "kernel.devpts_multiple_instances")
    assert devpts["lxc_checkconfig"] is None
    assert devpts["outcome"] == "passed"


@pytest.mark.parametrize("name", ["2.6.32", "3.2"])
def test_suite_is_right_where_the_6_0_script_is_wrong(checkconfig_scripts, tmp_path, suite, name):
    """LXC 6.0's anchored grep looks for '^DEVPTS_MULTIPLE_INSTANCES=' (its item leaves out
    CONFIG_): on every kernel before 4.7 it says 'missing' where the config has the option."""
    config = tmp_path / name
    config.write_bytes(SYNTHETIC[name])
    devpts = _check(_every_item_matched_once(checkconfig_scripts["6.0"], config, suite, "6.0"),
                    "kernel.devpts_multiple_instances")
    assert devpts["lxc_checkconfig"] == "Multiple /dev/pts instances: missing"
    assert devpts["outcome"] == "passed"
    assert "leaves out CONFIG_" in devpts["note"], devpts.get("note")
