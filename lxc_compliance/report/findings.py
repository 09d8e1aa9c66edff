"""The first screen of the report an auditor reads: the verdict, then the findings
(failures by root cause are views.root_cause_section; here the warnings, those to
act on apart from those the profile or this host makes so by design), then each
per-container check as one row with its containers as cells. Plain HTML with no
script: a mail preview, a CI system's viewer and paper show all of it."""

from __future__ import annotations

from html import escape

# The verdict's colour (text on white and white on it keep 4.5:1 or more).
VERDICT_STYLE = {"passed": "passed", "passed with warnings": "warned", "failed": "failed", "not run": "notrun"}
SYMBOLS = {"passed": "✓", "failed": "✗", "error": "!", "warned": "⚠", "skipped": "–", "waived": "w", "known": "k",
           "unreachable": "?"}
CSS = """
section.verdict { font-family: sans-serif; padding: 8px 16px; margin: 8px 0 14px; border-left: 10px solid; }
section.verdict h2 { margin: 2px 0 6px; font-size: 1.6em; text-transform: uppercase; letter-spacing: .04em; }
section.verdict.passed { border-color: #1b5e20; background: #e8f5e9; } section.verdict.passed h2 { color: #1b5e20; }
section.verdict.warned { border-color: #8a4b00; background: #fff3e0; } section.verdict.warned h2 { color: #8a4b00; }
section.verdict.failed { border-color: #b71c1c; background: #ffebee; } section.verdict.failed h2 { color: #b71c1c; }
section.verdict.notrun { border-color: #424242; background: #f5f5f5; } section.verdict.notrun h2 { color: #424242; }
section.verdict .counts span { margin-right: 1.2em; } section.verdict .counts .zero { color: #616161; }
section.verdict dl { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; margin: 6px 0; }
section.verdict dt { font-weight: bold; } section.verdict dd { margin: 0; }
section.findings { font-family: sans-serif; margin: 8px 0 14px; }
section.findings h2 { font-size: 1.2em; margin: 10px 0 4px; }
section.findings li { margin: 4px 0; } section.findings .why { color: #424242; }
table.container-matrix td { text-align: center; min-width: 2em; }
table.container-matrix th.check { text-align: left; font-weight: normal; }
table.container-matrix td.passed { color: #1b5e20; } table.container-matrix td.failed { color: #b71c1c; font-weight: bold; }
table.container-matrix td.warned { color: #8a4b00; } table.container-matrix td.skipped { color: #616161; }
.sr { position: absolute; left: -9999px; }
.legend { font-family: sans-serif; color: #424242; font-size: .9em; }
@media print { section.verdict, section.findings, table.container-matrix { break-inside: avoid; } }
"""


def tip(check: dict) -> str:
    """A cell's tooltip, escaped for an attribute: what was found, else the outcome."""
    return escape(check.get("message") or check.get("actual") or check["outcome"], quote=True)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def verdict_banner(document: dict) -> str:
    """The run's verdict in one line, its counts (zero in grey, never red), and the
    facts that place it: exit code, profile, host or hosts, when.

    >>> html = verdict_banner({"verdict": "passed with warnings", "exit_code": 0, "profile": "lab",
    ...                        "summary": {"passed": 3, "warned": 1, "failed": 0}, "host": {"hostname": "h1"}})
    >>> "PASSED WITH WARNINGS" in html.upper() and '<span class="zero">0 failed</span>' in html
    True
    """
    verdict = document.get("verdict") or "not run"
    summary = document.get("summary") or {}
    shown = ("failed", "error", "unreachable", "warned", "passed", "skipped", "waived", "known")
    counts = "".join(f'<span class="{"zero" if not summary.get(o) else o}">{summary.get(o, 0)} {o}</span>'
                     for o in shown if o in ("failed", "warned", "passed", "skipped") or summary.get(o))
    hosts = document.get("hosts") or []
    where = (", ".join(h.get("hostname", "?") for h in hosts) if len(hosts) > 1
             else (document.get("host") or {}).get("hostname", "?"))
    facts = [("Exit code", str(document.get("exit_code", "?"))), ("Profile", document.get("profile", "?")),
             ("Hosts" if len(hosts) > 1 else "Host", where),
             ("When", " to ".join(filter(None, [document.get("started"), document.get("finished")])) or "?")]
    suite = document.get("suite") or {}
    if suite:
        facts.append(("Suite", " ".join(filter(None, [suite.get("version"), suite.get("commit")]))))
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in facts)
    return (f'<section class="verdict {VERDICT_STYLE.get(verdict, "notrun")}"><h2>{escape(verdict)}</h2>'
            f'<div class="counts">{counts}</div><dl>{rows}</dl></section>')


def _grouped(checks: list[dict]) -> dict[str, list[dict]]:
    """Checks by their check id (one entry per check, its containers together)."""
    groups: dict[str, list[dict]] = {}
    for check in checks:
        groups.setdefault(check.get("check") or check["id"], []).append(check)
    return groups


def _where(group: list[dict]) -> str:
    containers = [c["container"] for c in group if c.get("container")]
    return f" on {', '.join(containers)}" if containers else ""


def warnings_section(checks: list[dict]) -> str:
    """The warnings, one line per check (its containers listed): first those to act
    on, then those accepted by design, each with why; '' when nothing warned.

    >>> html = warnings_section([{"id": "a.x.s01", "check": "a.x", "container": "s01", "outcome": "warned",
    ...     "title": "T", "message": "m", "by_design": True, "note": "a failure here only warns: no AppArmor"},
    ...     {"id": "a.y", "check": "a.y", "container": None, "outcome": "warned", "title": "U", "message": "n"}])
    >>> html.index("to act on") < html.index("by design") and "a.x</strong> on s01" in html
    True
    """
    warned = [c for c in checks if c["outcome"] == "warned"]
    if not warned:
        return ""
    # Required items first: an optional one missing matters less than a required one let through.
    act = _grouped(sorted((c for c in warned if not c.get("by_design")), key=lambda c: c.get("severity") != "required"))
    accepted = _grouped([c for c in warned if c.get("by_design")])
    parts = []
    if act:
        items = "".join(
            f'<li><strong>{escape(check_id)}</strong>{escape(_where(group))}: {escape(group[0].get("message") or group[0]["title"])}'
            + (f'<div class="why">Fix: {escape(group[0]["remediation"])}</div>' if group[0].get("remediation") else "")
            + "</li>" for check_id, group in act.items())
        parts.append(f"<h2>{_plural(len(act), 'warning')} to act on</h2><ul>{items}</ul>")
    if accepted:
        items = "".join(
            f'<li><strong>{escape(check_id)}</strong>{escape(_where(group))}: '
            f'<span class="why">{escape((group[0].get("note") or "").removeprefix("a failure here only warns: "))}</span></li>'
            for check_id, group in accepted.items())
        parts.append(f"<h2>{_plural(len(accepted), 'warning')} accepted by design</h2>"
                     f"<p class=\"legend\">What the profile or this host makes so; nothing to fix for this run.</p>"
                     f"<ul>{items}</ul>")
    return f'<section class="findings">{"".join(parts)}</section>'


def container_matrix(checks: list[dict], caption: str, select) -> str:
    """One row per check, one column per container (those SELECT keeps), each cell
    the container's outcome with its finding as a tooltip; '' when none.

    >>> html = container_matrix([{"id": "c.b.s01", "check": "c.b", "container": "s01", "outcome": "failed",
    ...     "title": "Boots", "message": "slow"}, {"id": "c.b.s02", "check": "c.b", "container": "s02",
    ...     "outcome": "passed", "title": "Boots"}], "Samples", lambda name: True)
    >>> html.count("<tr>") == 2 and 'title="slow"' in html and ">s02<" in html
    True
    """
    kept = [c for c in checks if c.get("container") and select(c["container"])]
    if not kept:
        return ""
    containers = list(dict.fromkeys(c["container"] for c in kept))
    rows = []
    for check_id, group in _grouped(kept).items():
        by_container = {c["container"]: c for c in group}
        cells = []
        for name in containers:
            check = by_container.get(name)
            if check is None:
                cells.append("<td></td>")
                continue
            cells.append(f'<td class="{check["outcome"]}" title="{tip(check)}">{SYMBOLS.get(check["outcome"], "?")}'
                         f'<span class="sr"> {check["outcome"]}</span></td>')
        rows.append(f'<tr><th class="check">{escape(check_id)}<br><small>{escape(group[0]["title"])}</small></th>'
                    f"{''.join(cells)}</tr>")
    head = "".join(f"<th>{escape(name)}</th>" for name in containers)
    legend = " ".join(f"{symbol} {outcome}" for outcome, symbol in SYMBOLS.items())
    return (f'<table class="compliance-summary container-matrix"><caption>{escape(caption)}: '
            f"{_plural(len(containers), 'container')}, one row per check</caption>"
            f"<tr><th>check</th>{head}</tr>{''.join(rows)}</table><p class=\"legend\">{escape(legend)}</p>")
