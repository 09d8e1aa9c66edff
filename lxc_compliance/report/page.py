"""The HTML report auditors read (reports/PROFILE.html), drawn from the JSON
results alone, one host or many: the verdict first, then the findings (failures
by root cause, warnings to act on, warnings accepted by design), checks by
category, then one row per check with its containers as cells, the boot charts,
the environment and a legend. Plain HTML and inline SVG: no script is needed to
read any of it (a mail preview, a CI system's viewer), nothing is fetched, and
it prints whole (every detail opened, the header repeated, nothing clipped)."""

from __future__ import annotations

import re
from collections import Counter
from html import escape

from lxc_compliance.model.catalog import CATEGORIES
from lxc_compliance.report import findings, views

# Worst first: the order rows and a group's outcome follow.
RANK = {"error": 0, "failed": 1, "unreachable": 2, "known": 3, "warned": 4, "waived": 5, "skipped": 6, "passed": 7}
# Colours with 4.5:1 or more on white (WCAG AA); each outcome also has a symbol and its word.
COLOURS = {"passed": "#1b5e20", "failed": "#b71c1c", "error": "#b71c1c", "unreachable": "#b71c1c",
           "warned": "#8a4b00", "waived": "#006064", "known": "#6a1b9a", "skipped": "#555555"}
LEGEND = (
    ("passed", "the host shows what the check expects"),
    ("failed", "a required item is missing or wrong: the run exits 1"),
    ("warned", "it failed, and here it only warns: an optional item, or a required one the profile or this host "
               "accepts (its note says why; those by design are listed apart)"),
    ("skipped", "not checked: the profile does not ask for it, or a failed check it needs kept it from running"),
    ("waived", "failed, accepted until its waiver expires"),
    ("known", "failed, as it already did in the baseline run"),
    ("unreachable", "the host could not be read"),
)
SEVERITY = (("required", "a failure fails the run"), ("optional", "a failure only warns"))
CSS = """
body { font-family: sans-serif; margin: 16px 24px; color: #1a1a1a; line-height: 1.35; max-width: 1400px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 22px; }
table { border-collapse: collapse; margin: 6px 0 14px; }
th, td { border: 1px solid #bdbdbd; padding: 3px 8px; vertical-align: top; text-align: left; }
.wide { overflow-x: auto; }
table.checks { width: 100%; table-layout: fixed; }
table.checks col.outcome { width: 7.5em; } table.checks col.check { width: 30%; } table.checks col.severity { width: 6em; }
table.checks td, table.checks th { overflow-wrap: anywhere; }
table.checks tr.detail > td { border-top: none; padding: 0 8px 6px 24px; }
.o { font-weight: bold; white-space: nowrap; }
""" + "".join(f".o.{o}, td.{o} {{ color: {c}; }}\n" for o, c in COLOURS.items()) + """
.cells span { display: inline-block; margin: 1px 6px 1px 0; white-space: nowrap; }
details > summary { cursor: pointer; color: #333; }
dl.detail { margin: 4px 0; } dl.detail dt { font-weight: bold; margin-top: 4px; }
dl.detail dd { margin-left: 1.5em; white-space: pre-wrap; }
table.bars td.bar { width: 320px; padding: 4px; } .bar span { display: inline-block; height: 12px; }
table.environment th { width: 12em; }
section.root-causes { border: 2px solid #b71c1c; padding: 4px 14px; margin: 8px 0 14px; }
section.root-causes h2 { color: #b71c1c; margin: 6px 0; }
section.root-causes .fix { color: #333; margin-left: 1em; }
@media screen and (max-width: 900px) { body { margin: 8px; } table.checks col.check { width: 32%; }
  table.checks col.outcome { width: 6.5em; } table.checks col.severity { width: 5.5em; } }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  .wide { overflow: visible; }
  thead { display: table-header-group; } tr { break-inside: avoid; }
  details::details-content { content-visibility: visible; display: block; }
  details > summary { list-style: none; } details > summary::-webkit-details-marker { display: none; }
  a { color: inherit; text-decoration: none; }
}
""" + findings.CSS
# Opens every detail before printing where scripts run (Chromium also prints them from the CSS above).
PRINT_SCRIPT = "<script>addEventListener('beforeprint',()=>document.querySelectorAll('details').forEach(d=>d.open=true))</script>"


def anchor(check: dict) -> str:
    return "check-" + re.sub(r"[^A-Za-z0-9_.-]", "-", f"{check['host']}--{check.get('check') or check['id']}")


def _worst(group: list[dict]) -> str:
    return min((c["outcome"] for c in group), key=lambda o: RANK.get(o, 9))


def _outcome(outcome: str) -> str:
    return f'<span class="o {outcome}">{findings.SYMBOLS.get(outcome, "?")} {escape(outcome)}</span>'


def rows_of(checks: list[dict]) -> list[list[dict]]:
    """The checks as rows: one per host and check, its containers together, worst first.

    >>> [len(r) for r in rows_of([{"id": "a.b.s01", "check": "a.b", "host": "h", "outcome": "passed"},
    ...                           {"id": "a.b.s02", "check": "a.b", "host": "h", "outcome": "failed"},
    ...                           {"id": "k.x", "check": "k.x", "host": "h", "outcome": "passed"}])]
    [2, 1]
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for check in checks:
        groups.setdefault((check["host"], check.get("check") or check["id"]), []).append(check)
    # sorted() is stable: among rows of one rank, the order the checks ran in stays.
    return [groups[key] for key in sorted(groups, key=lambda key: RANK.get(_worst(groups[key]), 9))]


def _details(group: list[dict]) -> str:
    first = group[0]
    waiver = first.get("waiver")
    if waiver:
        until = f" until {waiver['expires']}" if waiver.get("expires") else ""
        waiver = (f"expired on {waiver['expires']}: " if waiver.get("expired") else f"waived{until}: ") + waiver["justification"]
    containers = [c for c in group if c.get("container")]
    rows = []
    if containers:
        listed = sorted(containers, key=lambda c: (RANK.get(c["outcome"], 9), c["container"]))
        rows.append(("Each container", "\n".join(
            f"{c['container']}: {c['outcome']}: {c.get('message') or c.get('actual') or ''}".rstrip(": ") for c in listed)))
    else:
        rows.append(("Finding", first.get("message")))
    rows += [("Why it matters", first.get("why")), ("How to fix it", first.get("remediation")),
             ("Reference", first.get("source")), ("Waiver", waiver),
             ("Baseline", "already failing in the baseline run" if first["outcome"] == "known" else None),
             ("Evidence", first.get("evidence")), ("lxc-checkconfig says", first.get("lxc_checkconfig")),
             ("Note", first.get("note")),
             ("Blocked by", f"{first['blocked_by']} failed, so this was not checked" if first.get("blocked_by") else None)]
    items = "".join(f"<dt>{escape(name)}</dt><dd>{escape(str(value))}</dd>" for name, value in rows if value)
    opened = " open" if _worst(group) in ("failed", "error", "unreachable", "warned", "known") else ""
    return f'<details{opened}><summary>Details</summary><dl class="detail">{items}</dl></details>'


def _row(group: list[dict], many: bool) -> str:
    first = group[0]
    containers = [c for c in group if c.get("container")]
    if containers:
        found = '<div class="cells">' + "".join(
            f'<span class="o {c["outcome"]}" title="{findings.tip(c)}">'
            f'{findings.SYMBOLS.get(c["outcome"], "?")} {escape(c["container"])}</span>' for c in containers) + "</div>"
        counts = Counter(c["outcome"] for c in containers)
        found += escape(", ".join(f"{n} {o}" for o, n in sorted(counts.items(), key=lambda kv: RANK.get(kv[0], 9))))
    else:
        found = escape(first.get("actual") or first.get("message") or "")
    name = first.get("check") or first["id"]
    host = f'<br><small>on {escape(first["host"])}</small>' if many else ""
    return (f'<tbody id="{anchor(first)}"><tr class="check"><td>{_outcome(_worst(group))}</td>'
            f'<td><strong>{escape(name)}</strong>{host}<br>{escape(first.get("title", ""))}</td>'
            f'<td class="severity">{escape(first.get("severity", ""))}</td><td>{escape(first.get("expected", ""))}</td>'
            f'<td>{found}</td></tr><tr class="detail"><td colspan="5">{_details(group)}</td></tr></tbody>')


def checks_table(checks: list[dict], many: bool) -> str:
    rows = "".join(_row(group, many) for group in rows_of(checks))
    return ('<div class="wide"><table class="checks"><colgroup><col class="outcome"><col class="check">'
            '<col class="severity"><col><col></colgroup><thead><tr><th>Outcome</th><th>Check</th>'
            '<th class="severity">Severity</th><th>Expected</th><th>Found</th></tr></thead>' + rows + "</table></div>")


def category_bars(checks: list[dict]) -> str:
    """Per category, a bar of its outcomes and the counts that are not zero."""
    counts = Counter((c["category"], c["outcome"]) for c in checks)
    rows = []
    for category in [c for c in CATEGORIES if any(k[0] == c for k in counts)]:
        total = sum(n for (cat, _), n in counts.items() if cat == category)
        present = sorted(((o, n) for (cat, o), n in counts.items() if cat == category), key=lambda kv: RANK.get(kv[0], 9))
        bar = "".join(f'<span style="width:{100 * n / total:.2f}%;background:{COLOURS.get(o, "#777")}" '
                      f'title="{n} {o}"></span>' for o, n in present)
        text = ", ".join(f'<span class="o {o}">{n} {o}</span>' for o, n in present)
        rows.append(f'<tr><td>{escape(category)}</td><td class="bar"><div class="bar">{bar}</div></td><td>{text}</td></tr>')
    return ('<table class="bars"><caption>Checks by category</caption><tr><th>category</th><th></th><th>outcomes</th></tr>'
            + "".join(rows) + "</table>")


def _table(rows: list[tuple[str, object]], anchor_id: str = "") -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows if v)
    where = f' id="{anchor_id}"' if anchor_id else ""
    return f'<table class="environment"{where}>{body}</table>'


def _host_facts(entry: dict) -> list[tuple[str, object]]:
    if not entry.get("reachable", True):
        return [("Host", entry.get("spec")), ("Unreachable", entry.get("error"))]
    return [("Host", entry.get("hostname")), ("Distribution", entry.get("distribution")),
            ("Kernel release", entry.get("kernel_release")), ("LXC version", entry.get("lxc_version") or "not installed"),
            ("Kernel config", entry.get("kernel_config") or "none found"), ("cgroup layout", entry.get("cgroup_layout")),
            ("Results file", entry.get("source"))]


def environment(document: dict) -> str:
    """The run's facts, then each host's (one table per host, the host table's links land there)."""
    hosts = document.get("hosts") or [dict(document.get("host") or {}, reachable=True)]
    suite = document.get("suite") or {}
    evidence = document.get("evidence") or {}
    merged = document.get("merged_from")
    run = [("Profile", " extends ".join(document.get("profile_chain") or [document.get("profile") or ""])),
           ("Run id", document.get("run_id")), ("Started", document.get("started")),
           ("Finished", document.get("finished")),
           ("Duration", f"{document['duration_s']:.1f} s" if document.get("duration_s") is not None else None),
           ("Merged from", f"{len(merged)} results files: {', '.join(merged)}" if merged else None),
           ("Suite", " ".join(filter(None, [suite.get("version"), suite.get("commit")]))),
           ("Evidence", f"{evidence['bundle']}: EVIDENCE.sha256 sha256 {evidence['evidence_manifest_sha256']}"
            if evidence else None)]
    if len(hosts) == 1:
        return "<h2>Environment</h2>" + _table(_host_facts(hosts[0]) + run)
    return "<h2>Environment</h2>" + _table(run) + "".join(
        f"<h3>{escape(entry.get('hostname') or entry.get('spec') or '?')}</h3>"
        + _table(_host_facts(entry), views.anchor(entry.get("hostname") or entry.get("spec") or "?")) for entry in hosts)


def baseline_gate(document: dict) -> str:
    """What changed against the baseline run (--baseline): new failures first; '' without one.

    >>> baseline_gate({"baseline": {"path": "b.json", "new": ["h1: a"], "fixed": [], "known": ["h1: b"],
    ...                             "removed": [], "changed": ["h1: lxc_version 5.0.2 -> 6.0.4"]}}).split("</h2>")[0]
    '<section class="findings"><h2>Against the baseline b.json: 1 new, 0 fixed, 1 known, 0 removed'
    """
    gate = document.get("baseline")
    if not gate:
        return ""
    counts = ", ".join(f"{len(gate.get(k) or [])} {k}" for k in ("new", "fixed", "known", "removed"))
    lists = "".join(f"<li>{escape(word)}: {escape(', '.join(gate[key]))}</li>"
                    for key, word in (("new", "new failures"), ("fixed", "fixed"), ("removed", "no longer checked"),
                                      ("changed", "changed since the baseline")) if gate.get(key))
    return (f'<section class="findings"><h2>Against the baseline {escape(str(gate.get("path")))}: {escape(counts)}</h2>'
            f"<ul>{lists}</ul></section>")


def legend() -> str:
    outcomes = "".join(f"<dt>{_outcome(o)}</dt><dd>{escape(text)}</dd>" for o, text in LEGEND)
    severity = "".join(f"<dt>{escape(s)}</dt><dd>{escape(text)}</dd>" for s, text in SEVERITY)
    return (f'<h2>Legend</h2><dl class="detail">{outcomes}</dl>'
            f'<p>Severity: what a failure of the check does.</p><dl class="detail">{severity}</dl>')


def _root_causes(document: dict) -> str:
    """views.root_cause_section, each cause linked to its row."""
    checks = document["checks"]
    section = views.root_cause_section(document.get("root_causes") or [], checks)
    by_id = {(c["host"], c["id"]): c for c in checks}
    for cause in document.get("root_causes") or []:
        check = by_id.get((cause.get("host"), cause["id"]))
        if check is not None:
            section = section.replace(f"<strong>{escape(cause['id'])}</strong>",
                                      f'<strong><a href="#{anchor(check)}">{escape(cause["id"])}</a></strong>', 1)
    return section


def render(document: dict, budgets: dict[str, float | None] | None = None) -> str:
    """The whole page for DOCUMENT (a run's results, or a merge's); BUDGETS: the boot
    charts' budgets ({'samples': s, 'fleet': s}), where the profile sets them."""
    checks = document["checks"]
    hosts = document.get("hosts") or []
    many = len(hosts) > 1
    where = f"{len(hosts)} hosts" if many else (document.get("host") or {}).get("hostname", "?")
    title = f"lxc-compliance: {document.get('profile', '?')} profile on {where}"
    budgets = budgets or {}
    parts = [findings.verdict_banner(document), baseline_gate(document), _root_causes(document),
             findings.warnings_section(checks)]
    if many:
        parts.append(views.host_category_table(document, link=True))
    parts.append(category_bars(checks))
    parts.append(f"<h2>Checks</h2><p>{len(rows_of(checks))} checks, {len(checks)} results "
                 "(a check of several containers is one row, each container a cell); worst first.</p>")
    parts.append(checks_table(checks, many))
    parts.append(views.boot_chart(checks, budgets.get("samples")))
    parts.append(views.boot_chart(checks, budgets.get("fleet"), "fleet.started.", "The fleet's start (--start-fleet), by phase"))
    parts += [environment(document), legend()]
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
            f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1>" + "".join(filter(None, parts))
            + PRINT_SCRIPT + "</body></html>\n")
