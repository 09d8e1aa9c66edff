"""`lxcc merge` joins results files into the page a run over several hosts writes."""

from __future__ import annotations

import pytest

from lxc_compliance.report import merge, page

pytestmark = pytest.mark.unit


def _results(hostname: str, outcome: str) -> dict:
    check = {"id": "host.lxc_network_link", "check": "host.lxc_network_link", "container": None,
             "category": "host", "outcome": outcome, "title": "New containers join the bridge",
             "severity": "required", "expected": "br0", "message": "lxcbr0" if outcome == "failed" else None}
    return {"host": {"hostname": hostname, "distribution": "Debian 12", "kernel_config": "/boot/config-6.1"},
            "profile": "site", "run_id": hostname, "started": "2026-12-02T10:00:00+00:00",
            "summary": {outcome: 1}, "checks": [check]}


def test_the_merged_page_links_each_host_to_its_facts_and_names_the_failing_one():
    document = merge.merge([("a.json", _results("rh1", "passed")), ("b.json", _results("rh2", "failed"))])
    html = page.render(document)
    assert document["verdict"] == "failed" and document["exit_code"] == 1
    for host in ("rh1", "rh2"):
        assert f'href="#host-{host}"' in html and f'id="host-{host}"' in html
    assert "Merged from</th><td>2 results files: a.json, b.json" in html
    assert "/boot/config-6.1" in html  # each host's own facts survive the merge
    assert "on rh2</small>" in html and html.count('<tbody id="check-') == 2
