"""The plugin as users meet it: profiles, options, outcomes, exit codes, xdist."""

from __future__ import annotations

import json
from pathlib import Path

from configs import FULL, SYNTHETIC, config
from conftest import ROOT


def _one_error_line(result) -> str:
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{result.stdout}{result.stderr}"
    assert "Traceback" not in lines[0]
    return lines[0]


def test_extends_loop_across_files(tmp_path, suite):
    (tmp_path / "a.yaml").write_text("extends: b\n")
    (tmp_path / "b.yaml").write_text("extends: a\n")
    result = suite.run(f"--profile={tmp_path / 'a.yaml'}")
    assert result.returncode == 4
    assert "extends loop: a -> b -> a" in _one_error_line(result)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_optional_miss_warns_and_exits_0(tmp_path, suite):
    path = _write(tmp_path, "cfg", config("6.1.0", FULL, drop={"CONFIG_VLAN_8021Q"}))
    result = suite.run(f"--kernel-config={path}")
    assert result.returncode == 0, result.stdout
    assert "1 warned" in result.stdout
    document = suite.results()
    vlan = next(c for c in document["checks"] if c["id"] == "kernel.vlan")
    assert vlan["outcome"] == "warned"
    assert vlan["actual"] == "CONFIG_VLAN_8021Q is not set"
    assert vlan["lxc_checkconfig"] == "Vlan: missing"
    assert document["summary"]["warned"] == 1 and document["summary"]["failed"] == 0


def test_required_miss_fails_and_exits_1(tmp_path, suite):
    path = _write(tmp_path, "cfg", SYNTHETIC["6.1-required-missing"])
    result = suite.run(f"--kernel-config={path}")
    assert result.returncode == 1
    document = suite.results()
    failed = sorted(c["id"] for c in document["checks"] if c["outcome"] == "failed")
    assert failed == ["kernel.ipc_namespace", "kernel.namespaces", "kernel.pid_namespace"]
    pid = next(c for c in document["checks"] if c["id"] == "kernel.pid_namespace")
    assert pid["lxc_checkconfig"] == "Pid namespace: required"
    assert "CONFIG_PID_NS=y" in pid["remediation"]


def test_profile_override_makes_an_optional_item_required(tmp_path, suite):
    profile = tmp_path / "strict.yaml"
    profile.write_text("extends: kernel\nchecks:\n  kernel.vlan: {required: true}\n")
    path = _write(tmp_path, "cfg", config("6.1.0", FULL, drop={"CONFIG_VLAN_8021Q"}))
    result = suite.run(f"--profile={profile}", f"--kernel-config={path}")
    assert result.returncode == 1
    document = suite.results("strict")
    assert document["profile_chain"] == ["strict", "kernel"]
    vlan = next(c for c in document["checks"] if c["id"] == "kernel.vlan")
    assert (vlan["outcome"], vlan["severity"]) == ("failed", "required")


def test_json_contract(tmp_path, suite):
    path = _write(tmp_path, "cfg", SYNTHETIC["6.1"])
    assert suite.run(f"--kernel-config={path}").returncode == 0
    document = suite.results()
    assert set(document) >= {"profile", "started", "duration_s", "host", "summary", "checks", "baseline", "waivers"}
    assert set(document["host"]) == {"spec", "hostname", "distribution", "kernel_release", "lxc_version", "checkconfig",
                                     "cgroup_layout", "cgroup_dialect"}
    assert [entry["hostname"] for entry in document["hosts"]] == [document["host"]["hostname"]]
    assert {check["host"] for check in document["checks"]} == {document["host"]["hostname"]}
    assert set(document["summary"]) == {"passed", "failed", "warned", "skipped", "waived", "known", "unreachable"}
    assert document["baseline"] is None and document["waivers"] == {"applied": [], "expired": []}
    assert sum(document["summary"].values()) == len(document["checks"])
    ids = [c["id"] for c in document["checks"]]
    assert len(ids) == len(set(ids))
    for check in document["checks"]:
        assert {"id", "category", "title", "outcome", "expected", "actual", "remediation", "duration_s"} <= set(check)
        assert check["remediation"] and check["expected"]
    user_ns = next(c for c in document["checks"] if c["id"] == "kernel.user_namespace")
    assert user_ns["lxc_checkconfig"] == "User namespace: enabled"


def test_markers_select_categories(tmp_path, suite):
    path = _write(tmp_path, "cfg", SYNTHETIC["6.1"])
    assert suite.run(f"--kernel-config={path}", "-m", "kernel").returncode == 0
    assert suite.results()["summary"]["passed"] > 40
    assert suite.run(f"--kernel-config={path}", "-m", "network").returncode == 5


def test_xdist_gives_the_same_verdicts_and_one_report(tmp_path, suite):
    path = _write(tmp_path, "cfg", SYNTHETIC["5.10"])
    assert suite.run(f"--kernel-config={path}").returncode == 0
    serial = {c["id"]: (c["outcome"], c.get("lxc_checkconfig")) for c in suite.results()["checks"]}
    assert suite.run(f"--kernel-config={path}", "-n", "2").returncode == 0
    parallel_document = suite.results()
    parallel = {c["id"]: (c["outcome"], c.get("lxc_checkconfig")) for c in parallel_document["checks"]}
    assert parallel == serial
    assert sorted(p.name for p in suite.report_dir.iterdir()) == ["kernel.html", "kernel.json"]


def test_no_config_found_skips_with_guidance(pytester, monkeypatch):
    """A host without any kernel config (this machine has /proc/config.gz, so the
    search is pointed at empty places)."""
    import lxc_compliance.readers.target

    empty = pytester.path / "nowhere"
    monkeypatch.setattr(lxc_compliance.readers.target, "candidate_paths", lambda release: [empty / "config.gz"])
    result = pytester.runpytest(
        str(ROOT / "checks"), f"--rootdir={ROOT}", "-c", str(ROOT / "pyproject.toml"),
        f"--report-dir={pytester.path / 'reports'}", "-k", "config_option or config_file",
    )
    assert result.ret == 0
    document = json.loads((pytester.path / "reports" / "kernel.json").read_text())
    assert document["summary"]["skipped"] == len(document["checks"]) > 40
    message = document["checks"][0]["message"]
    assert "no kernel config found" in message and "--kernel-config=PATH" in message


def test_html_report_shows_warned_as_its_own_outcome(tmp_path, suite):
    path = _write(tmp_path, "cfg", config("6.1.0", FULL, drop={"CONFIG_VLAN_8021Q"}))
    suite.run(f"--kernel-config={path}", f"--html={tmp_path / 'pytest-html.html'}")
    html = (suite.report_dir / "kernel.html").read_text()
    assert '<section class="verdict warned"><h2>passed with warnings</h2>' in html
    assert '<span class="warned">1 warned</span>' in html and '<span class="zero">0 failed</span>' in html
    row = html[html.index('<tbody id="check-'):].split("</tbody>", 1)[0]  # worst first: the warning's row
    assert '<span class="o warned">⚠ warned</span>' in row and "kernel.vlan" in row and "802.1Q VLAN" in row
    assert "<script src=" not in html and "<link href=\"http" not in html
    # pytest-html's page, where asked for (--html), knows the outcome too, or its filter hides those rows.
    developers = (tmp_path / "pytest-html.html").read_text()
    assert 'data-test-result="warned"' in developers and "1 Warned" in developers
    assert "'warned'," in developers, "the outcome filter must know 'warned' or it hides those rows"
