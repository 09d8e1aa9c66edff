"""What auditors read and gates act on: the HTML report (rendered in a real
headless Chromium), waivers, the baseline gate, JUnit XML, and secrets that
must appear nowhere."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from configs import FULL, config
from conftest import ROOT
from hoststate import HostState

CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _kernel_config(tmp_path: Path, drop: set[str]) -> Path:
    path = tmp_path / "config"
    path.write_bytes(config("6.1.0", FULL, drop=drop))
    return path


def _profile(tmp_path: Path, text: str, name: str = "site") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


# --- waivers and the baseline gate ------------------------------------------

WAIVED_PROFILE = """extends: kernel
waivers:
  - id: kernel.pid_namespace
    justification: "this host runs no containers with their own PID namespace"
    expires: 2099-12-31
  - id: kernel.ipc_namespace
    justification: "accepted for the old build hosts until their replacement"
    expires: 2020-06-30
"""


def test_waived_failure_does_not_fail_and_expired_waiver_says_so(tmp_path, suite):
    kernel = _kernel_config(tmp_path, {"CONFIG_PID_NS", "CONFIG_IPC_NS"})
    result = suite.run(f"--profile={_profile(tmp_path, WAIVED_PROFILE)}", f"--kernel-config={kernel}")
    assert result.returncode == 1, "the expired waiver's failure counts"
    checks = {c["id"]: c for c in suite.results("site")["checks"]}
    assert checks["kernel.pid_namespace"]["outcome"] == "waived"
    assert checks["kernel.pid_namespace"]["waiver"]["justification"].startswith("this host runs")
    assert checks["kernel.ipc_namespace"]["outcome"] == "failed"
    assert "expired on 2020-06-30" in checks["kernel.ipc_namespace"]["message"]
    assert "waiver expired: kernel.ipc_namespace" in result.stdout

    only_valid = WAIVED_PROFILE.replace("2020-06-30", "2099-01-01")
    result = suite.run(f"--profile={_profile(tmp_path, only_valid)}", f"--kernel-config={kernel}")
    assert result.returncode == 0, result.stdout[-2000:]
    assert suite.results("site")["summary"]["waived"] == 2


@pytest.mark.parametrize(("waiver", "words"), [
    ("  - id: kernel.pid_namespace\n", ["waivers.0", "missing required key 'justification'"]),
    ("  - {id: kernel.pid_namespace, justification: short}\n", ["justification", "at least 10"]),
    ("  - {id: kernel.pid_nmespace, justification: 'a long enough reason'}\n", ["waivers[0].id", "no check has the id"]),
    ("  - {id: kernel.pid_namespace, justification: 'a long enough reason', expires: 2027-02-30}\n", ["expires", "not a date"]),
])
def test_bad_waiver_is_a_one_line_error(waiver, words, tmp_path, suite):
    profile = _profile(tmp_path, "extends: kernel\nwaivers:\n" + waiver)
    result = suite.run(f"--profile={profile}")
    assert result.returncode == 4
    line = (result.stdout + result.stderr).strip()
    assert len(line.splitlines()) == 1 and all(word in line for word in words), line


def test_baseline_gate_fails_on_new_failures_only(tmp_path, suite):
    """After an 'upgrade' that drops a kernel option: the new failure fails the
    run, the old one is known, a fix is listed, and so is a check that is gone."""
    before = _kernel_config(tmp_path, {"CONFIG_PID_NS", "CONFIG_NAMESPACES"})
    assert suite.run(f"--kernel-config={before}").returncode == 1
    baseline = tmp_path / "baseline.json"
    document = suite.results()
    document["checks"].append({"id": "kernel.retired_check", "outcome": "passed"})
    baseline.write_text(json.dumps(document))

    after = _kernel_config(tmp_path, {"CONFIG_PID_NS", "CONFIG_IPC_NS"})
    result = suite.run(f"--kernel-config={after}", f"--baseline={baseline}")
    assert result.returncode == 1
    gate = suite.results()["baseline"]
    assert gate["new"] == ["kernel.ipc_namespace"]
    assert gate["known"] == ["kernel.pid_namespace"]
    assert gate["fixed"] == ["kernel.namespaces"]
    assert gate["removed"] == ["kernel.retired_check"]
    by_id = {c["id"]: c for c in suite.results()["checks"]}
    assert by_id["kernel.ipc_namespace"]["baseline_outcome"] == "passed"
    assert by_id["kernel.pid_namespace"]["baseline_outcome"] == "failed"
    lines = result.stdout.strip().splitlines()
    tail = lines[lines.index(f"baseline: {baseline}"):]
    assert tail[1] == "new failures (regressions): 1: kernel.ipc_namespace"
    assert tail[2] == "fixed since the baseline: 1: kernel.namespaces"
    assert tail[3] == "no longer checked: 1: kernel.retired_check"
    assert tail[-1].startswith("report:  "), "the terminal ends with the gate and where the report is"

    # Nothing new: the gate passes although a known failure remains.
    baseline.write_text((suite.report_dir / "kernel.json").read_text())
    assert suite.run(f"--kernel-config={after}", f"--baseline={baseline}").returncode == 0
    assert suite.results()["summary"]["known"] == 2


@pytest.mark.changes_host
def test_baseline_gate_after_a_lowered_sysctl(tmp_path, suite):
    """The judged scenario: a host run, then a sysctl lowered: exactly that check is new."""
    with HostState() as state:
        assert suite.run("--profile=host").returncode in (0, 1)
        baseline = tmp_path / "host-before.json"
        baseline.write_text((suite.report_dir / "host.json").read_text())
        state.sysctl("kernel.pid_max", 4096)
        result = suite.run("--profile=host", f"--baseline={baseline}")
    assert result.returncode == 1
    assert suite.results("host")["baseline"]["new"] == ["host.pid_max"]


@pytest.mark.parametrize(("content", "words"), [
    (None, ["no such file"]),
    ("{not json", ["not a JSON file"]),
    ('{"checks": [{"name": "x"}]}', ["not an lxc-compliance results file"]),
])
def test_bad_baseline_is_a_one_line_error(content, words, tmp_path, suite):
    baseline = tmp_path / "baseline.json"
    if content is not None:
        baseline.write_text(content)
    result = suite.run(f"--baseline={baseline}")
    assert result.returncode == 4
    line = (result.stdout + result.stderr).strip()
    assert len(line.splitlines()) == 1 and all(word in line for word in words), line


# --- report content, JUnit, secrets -----------------------------------------

def test_junit_xml_is_valid_and_counts_every_check(tmp_path, suite):
    kernel = _kernel_config(tmp_path, {"CONFIG_PID_NS", "CONFIG_VLAN_8021Q"})
    junit = tmp_path / "junit.xml"
    suite.run(f"--kernel-config={kernel}", f"--junitxml={junit}")
    root = ElementTree.parse(junit).getroot()
    suite_element = root if root.tag == "testsuite" else root.find("testsuite")
    cases = suite_element.findall("testcase")
    assert len(cases) == int(suite_element.get("tests")) == len(suite.results()["checks"])
    failed = [c for c in cases if c.find("failure") is not None]
    assert int(suite_element.get("failures")) == len(failed) == 1
    assert "pid_namespace" in failed[0].get("name")


@pytest.mark.changes_host
def test_secrets_reach_no_output(lab_gold, tmp_path, suite):
    """A password in the environment and a profile that points at it, with a login
    that fails: the password is in no terminal line, JSON, HTML or JUnit XML."""
    secret = "s3cret-" + tmp_path.name[-8:] + "-pw"
    profile = _profile(tmp_path, (
        f"extends: {ROOT / 'profiles' / 'lab.yaml'}\ncategories: [containers]\n"
        "containers:\n  build_gold: false\n  samples: 1\n  boot_timeout_s: 20\n"
        "  ssh: {user: student, password_env: LXCCT_SECRET}\n"), "secretive")
    junit = tmp_path / "junit.xml"
    with HostState():
        result = suite.run(f"--profile={profile}", f"--junitxml={junit}", "-rA", "--tb=long", "-l",
                           env={"LXCCT_SECRET": secret, "LXCCT_ALSO": secret})
    checks = {c["id"]: c for c in suite.results("secretive")["checks"]}
    assert checks["containers.ssh_login.s01"]["outcome"] == "failed", "the wrong password must fail the login"
    outputs = {"terminal": result.stdout + result.stderr, "junit": junit.read_text()}
    outputs.update({p.name: p.read_text() for p in suite.report_dir.iterdir()})
    assert [name for name, text in outputs.items() if secret in text] == []


@pytest.fixture(scope="module")
def failing_lab_report(tmp_path_factory, lab_gold):
    """A failing run's report, as auditors get it: kernel checks with failures and
    a warning, and real sample containers for the boot-time chart."""
    from conftest import Suite

    directory = tmp_path_factory.mktemp("auditor")
    kernel = _kernel_config(directory, {"CONFIG_PID_NS", "CONFIG_VLAN_8021Q"})
    profile = _profile(directory, f"extends: {ROOT / 'profiles' / 'lab.yaml'}\ncategories: [kernel, containers]\n", "event")
    suite = Suite(directory / "reports")
    with HostState():
        result = suite.run(f"--profile={profile}", f"--kernel-config={kernel}", "--samples=3", timeout=600)
    assert result.returncode == 1, result.stdout[-2000:]
    return suite.report_dir / "event.html", suite.results("event")


def test_report_content(failing_lab_report):
    html_path, document = failing_lab_report
    html = html_path.read_text()
    for fact in ("Profile", "Host", "Distribution", "Kernel release", "LXC version", "Run id", "Started",
                 "Finished", "Duration", "Suite"):
        assert f"<th>{fact}</th>" in html, fact
    assert document["run_id"] in html
    assert 'class="bars"' in html and "<caption>Checks by category</caption>" in html
    assert html.count('class="boot-chart"') == 1
    assert "budget 10 s" in html
    assert "<script src=" not in html and '<link href="http' not in html


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (./lxcc test installs it)")
def test_report_in_a_real_browser(failing_lab_report, tmp_path):
    """Headless Chromium renders the report offline: failures first with what was
    expected, what was found, why and how to fix; the chart drawn; and the page
    asks the network for nothing."""
    html_path, document = failing_lab_report
    netlog = tmp_path / "netlog.json"
    done = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--log-net-log={netlog}",
         "--virtual-time-budget=5000", "--dump-dom", html_path.as_uri()],
        capture_output=True, text=True, timeout=120)
    dom = done.stdout
    assert '<table class="checks">' in dom, done.stderr[-2000:]
    rows = re.findall(r'<tbody id="check-[^"]*">.*?</tbody>', dom, re.S)
    assert len(rows) == len({(c["host"], c["check"]) for c in document["checks"]}) < len(document["checks"])
    outcomes = [re.search(r'<span class="o (\w+)">', row)[1] for row in rows]
    assert outcomes[0] == "failed" and outcomes.index("passed") > outcomes.index("failed")
    assert outcomes.index("warned") < outcomes.index("passed")
    failed = next(row for row in rows if "kernel.pid_namespace" in row)
    assert "<details open" in failed, "a failure's details are open, not folded away"
    for words in ("CONFIG_PID_NS=y", "CONFIG_PID_NS is not set", "Why it matters", "How to fix it", "required"):
        assert words in failed, words
    samples = next(row for row in rows if "containers.boot_time" in row)
    assert all(f"s0{i}</span>" in samples for i in (1, 2, 3)), "one row, each sample a cell"
    assert re.search(r'<svg[^>]*class="boot-chart"', dom) and dom.count("<rect") >= 3 * 5
    page_requests = _page_requests(netlog)
    assert [url for url in page_requests if not url.startswith(("file:", "data:"))] == []


def test_the_results_file_keeps_its_contract(failing_lab_report):
    """The JSON validates against the schema shipped beside its writer; the verdict and exit code are
    the run's; every check names its container in a field of its own and carries every key."""
    import jsonschema

    from lxc_compliance.report.results import OPTIONAL

    _, document = failing_lab_report
    schema = json.loads((ROOT / "lxc_compliance" / "report" / "results.schema.json").read_text())
    jsonschema.validate(document, schema)
    assert (document["schema_version"], document["verdict"], document["exit_code"]) == (2, "failed", 1)
    assert document["suite"]["version"] and document["finished"] >= document["started"]
    boot = next(c for c in document["checks"] if c["id"] == "containers.boot_time.s01")
    assert (boot["check"], boot["container"]) == ("containers.boot_time", "s01")
    kernel = next(c for c in document["checks"] if c["id"] == "kernel.pid_namespace")
    assert kernel["container"] is None and all(key in kernel for key in OPTIONAL)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (./lxcc test installs it)")
def test_the_verdict_and_findings_read_without_javascript(failing_lab_report, tmp_path):
    """With scripts off (a mail preview, a CI system's viewer), the page still opens on the verdict,
    the root causes and the warnings, and shows every check, the samples' as one row each."""
    html_path, document = failing_lab_report
    html = html_path.read_text()
    # Its one script opens the details before printing; the page without it is what a viewer without scripts shows
    # (headless Chromium's dump needs scripts itself, so they are taken out of the page instead).
    assert html.count("<script") == 1 and "beforeprint" in html
    scriptless = tmp_path / "scriptless.html"
    scriptless.write_text(re.sub(r"<script>.*?</script>", "", html, flags=re.S))
    done = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", scriptless.as_uri()],
        capture_output=True, text=True, timeout=120)
    dom = done.stdout
    banner = re.search(r'<section class="verdict failed"><h2>failed</h2>.*?</section>', dom, re.S)
    assert banner, done.stderr[-2000:]
    assert "Exit code</dt><dd>1<" in banner[0] and f"{document['summary']['failed']} failed" in banner[0]
    assert dom.index('class="verdict') < dom.index('class="root-causes"') < dom.index('class="findings"')
    assert "kernel.pid_namespace" in dom.split('class="root-causes"', 1)[1].split("</section>", 1)[0]
    table = re.search(r'<table class="checks">.*?</table>', dom, re.S)[0]
    assert table.count('<tbody id="check-') == len({c["check"] for c in document["checks"]})
    boot = re.search(r'<tbody id="check-[^"]*containers.boot_time">.*?</tbody>', table, re.S)[0]
    assert [f"s0{i}" in boot for i in (1, 2, 3)] == [True] * 3


@pytest.mark.skipif(CHROMIUM is None or shutil.which("pdftotext") is None,
                    reason="chromium and poppler-utils are not installed (./lxcc test installs them)")
def test_the_report_prints_whole(failing_lab_report, tmp_path):
    """Printed (Chromium's print to PDF, read back with pdftotext): every check's details, passed
    ones included, with its severity, and no column cut off at the page's edge."""
    html_path, document = failing_lab_report
    pdf = tmp_path / "report.pdf"
    subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--no-pdf-header-footer",
                    f"--print-to-pdf={pdf}", html_path.as_uri()], capture_output=True, timeout=120, check=True)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, timeout=60).stdout
    flat = " ".join(text.split())
    rows = {c["check"]: c for c in document["checks"]}
    assert flat.count("Why it matters") >= len(rows), "a check's details did not print"
    assert "Severity" in flat and "Found" in flat, "a column of the table was cut off"
    passed = next(c for c in rows.values() if c["outcome"] == "passed" and c.get("why"))
    assert " ".join(passed["why"].split())[:60] in flat, "a passed check's why did not print"
    assert flat.index("failed") < flat.index("Checks by category")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (./lxcc test installs it)")
def test_the_report_fits_an_800px_window(failing_lab_report, tmp_path):
    """At 800 px nothing runs off the side: the page is as wide as the window (a script of the test's
    own, added to a copy, writes the widths into the page it dumps)."""
    html_path, _ = failing_lab_report
    measured = tmp_path / "measured.html"
    measured.write_text(html_path.read_text().replace(
        "</body>", "<script>document.body.insertAdjacentHTML('beforeend', '<p id=\"widths\">' + "
                   "document.documentElement.scrollWidth + ' ' + window.innerWidth + '</p>')</script></body>"))
    done = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=800,1000",
                           "--dump-dom", measured.as_uri()], capture_output=True, text=True, timeout=120)
    widths = re.search(r'<p id="widths">(\d+) (\d+)</p>', done.stdout)
    assert widths, done.stderr[-2000:]
    assert int(widths[1]) <= int(widths[2]), f"the page is {widths[1]} px wide in a {widths[2]} px window"


def _page_requests(netlog: Path) -> list[str]:
    """URLs the page itself asked for (the browser's own background requests excluded)."""
    log = json.loads(netlog.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [event["params"]["url"] for event in log["events"]
            if event["type"] == start_job and str(event["params"].get("network_isolation_key", "")).startswith("file://")]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (./lxcc test installs it)")
def test_the_request_check_sees_a_page_request(tmp_path):
    """The network check above can fail: a page that loads an image from loopback is caught."""
    page = tmp_path / "probe.html"
    page.write_text('<html><body><img src="http://127.0.0.1:9/probe.png"></body></html>')
    netlog = tmp_path / "netlog.json"
    subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--log-net-log={netlog}",
                    "--virtual-time-budget=3000", "--dump-dom", page.as_uri()], capture_output=True, timeout=120)
    assert "http://127.0.0.1:9/probe.png" in _page_requests(netlog)


def test_every_output_masks_what_the_run_holds_as_secret(tmp_path, suite):
    """The masking itself, made to bite: a plugin marks a string that every failure
    of this run prints as secret; it is gone from the terminal, tracebacks with
    locals, the JSON, the HTML and the JUnit XML."""
    (tmp_path / "mark_secret.py").write_text(
        "import pytest\n\n"
        "@pytest.hookimpl(trylast=True)\n"
        "def pytest_configure(config):\n"
        "    from lxc_compliance.plugin.run import RUN_KEY  # the checkout's conftest has named the package by now\n\n"
        "    config.stash[RUN_KEY].secrets.add('CONFIG_PID_NS')\n")
    kernel = _kernel_config(tmp_path, {"CONFIG_PID_NS"})
    junit = tmp_path / "junit.xml"
    result = suite.run(f"--kernel-config={kernel}", f"--junitxml={junit}", "-p", "mark_secret", "-l", "--tb=long", "-rA",
                       env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 1, result.stdout[-2000:]
    pid = next(c for c in suite.results()["checks"] if c["id"] == "kernel.pid_namespace")
    assert pid["outcome"] == "failed" and "********" in pid["message"]
    outputs = {"terminal": result.stdout + result.stderr, "junit": junit.read_text()}
    outputs.update({p.name: p.read_text() for p in suite.report_dir.iterdir()})
    assert [name for name, text in outputs.items() if "CONFIG_PID_NS" in text] == []


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (./lxcc test installs it)")
def test_the_report_opens_on_the_root_cause_in_a_real_browser(tmp_path, suite):
    """One fault (a bridge that is not there) and what it blocked: the page opens
    on the root cause with the blocked checks folded under it, and pytest's
    traceback appears only in the developers' fold."""
    profile = _profile(tmp_path, "categories: [network]\nnetwork: {bridge: lxcbnone0}\n", "event")
    result = suite.run(f"--profile={profile}")
    assert result.returncode == 1, result.stdout[-2000:]
    document = suite.results("event")
    blocked = [c["id"] for c in document["checks"] if c.get("blocked_by") == "network.bridge_exists"]
    assert document["root_causes"][0] == {"id": "network.bridge_exists", "message": "there is no link lxcbnone0",
                                          "blocks": blocked, "host": document["host"]["hostname"]}
    done = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                           "--virtual-time-budget=5000", "--dump-dom", (suite.report_dir / "event.html").as_uri()],
                          capture_output=True, text=True, timeout=120)
    dom = done.stdout
    assert '<table class="checks">' in dom, done.stderr[-2000:]
    causes = dom.index('<section class="root-causes">')
    assert dom.index('<section class="verdict failed">') < causes < dom.index('<table class="checks">'), \
        "the verdict, then the root causes, then the table of checks"
    section = dom[causes:dom.index("</section>", causes)]
    assert "network.bridge_exists" in section and f"{len(blocked)} checks not run because of it" in section
    assert all(f"<li>{check_id}</li>" in section for check_id in blocked)
    link = re.search(r'<a href="#(check-[^"]+)">network.bridge_exists</a>', section)
    assert link and f'<tbody id="{link[1]}">' in dom, "the root cause links to its row"
    assert "AssertionError" not in dom and "Traceback" not in dom, "the page speaks the checks' words, not pytest's"
