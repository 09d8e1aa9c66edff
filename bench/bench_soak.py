"""Soak: clean runs back to back, and how many of them fail anyway (false failures).

On a host with nothing wrong, every failed or errored check is a false alarm. Each
profile runs N times in a row as a user runs it; the figure is false failures per run,
and every false failure's results file and output are kept as evidence.

    .venv/bin/python bench/bench_soak.py [--runs lab=20 lab-unprivileged=10 workshop=10 lxd-lab=5]

- lab, lab-unprivileged, lxd-lab: the self-provisioning profiles as shipped.
- workshop: the AfNOG workshop recipe's host built for real once (its user, subids,
  lxc-usernet, pam_cgfs, a bridge with dnsmasq and six copies of the gold, as the tests
  build it), then `--profile=workshop --start-fleet` against it, limited to the network,
  fleet, containers and security categories (the host's tuning is this machine's own).
Results: bench/results/soak.json, and bench/results/soak-evidence/PROFILE-N/ per false failure.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "support"))

from measure import timed  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DEFAULT_RUNS = {"lab": 20, "lab-unprivileged": 10, "workshop": 10, "lxd-lab": 5}


def _false_failures(document: dict) -> list[dict]:
    return [{"id": c["id"], "outcome": c["outcome"], "message": c.get("message", "")}
            for c in document.get("checks", []) if c["outcome"] in ("failed", "error")]


def _workshop_host(stack: ExitStack) -> tuple[list[str], dict]:
    """The recipe's host, built as the tests build it; (pytest arguments, environment)."""
    from lab import COPIES, build_fleet
    from hoststate import HostState
    from lxc_compliance.lab.gold import GoldImage
    from lxc_compliance.lab.network import LabNetwork
    from lxc_compliance.lab.user import LabUser
    import uuid

    gold = GoldImage("lxcc-gold-bookworm")
    gold.ensure()
    password = gold.prepare("student", None, "512M", "1G")
    stack.enter_context(HostState())
    run_id = uuid.uuid4().hex
    network = stack.enter_context(LabNetwork(run_id, dhcp_hosts=(20, 80)))
    user = stack.enter_context(LabUser(run_id, network.bridge, COPIES + 2, gold, memory="512M", memsw="1G"))
    build_fleet(network, user, COPIES)
    profile = Path(tempfile.mkdtemp(prefix="lxcc-soak-")) / "event.yaml"
    stack.callback(shutil.rmtree, profile.parent, True)
    profile.write_text(f"extends: {ROOT / 'profiles' / 'workshop.yaml'}\nhost: {{user: {user.name}, containers: {COPIES}}}\n"
                       f"network:\n  bridge: {network.bridge}\n  subnet: {network.subnet}\n"
                       f"containers:\n  gold: {user.gold.name}\n  samples: 2\n")
    args = [f"--profile={profile}", "--start-fleet", "-m", "network or fleet or containers or security"]
    return args, {"LXCC_SSH_PASSWORD": password}


def soak(profile: str, runs: int, evidence: Path) -> dict:
    with ExitStack() as stack:
        args, env = (_workshop_host(stack) if profile == "workshop" else ([f"--profile={profile}"], {}))
        report_dir = Path(tempfile.mkdtemp(prefix="lxcc-soak-reports-"))
        stack.callback(shutil.rmtree, report_dir, True)
        name = Path(args[0].split("=", 1)[1]).stem
        done = []
        for number in range(1, runs + 1):
            seconds, _, output, code = timed([sys.executable, "-m", "pytest", *args, f"--report-dir={report_dir}"],
                                             ROOT, env=env, timeout=1800)
            try:
                document = json.loads((report_dir / f"{name}.json").read_text())
            except (OSError, ValueError):
                document = {}
            false = _false_failures(document) or ([{"id": "(run)", "outcome": f"exit {code}", "message": output[-500:]}]
                                                 if code not in (0, 1) or not document else [])
            if false:
                kept = evidence / f"{profile}-{number}"
                kept.mkdir(parents=True, exist_ok=True)
                (kept / "output.txt").write_text(output)
                if document:
                    (kept / f"{name}.json").write_text(json.dumps(document, indent=2))
            done.append({"run": number, "seconds": round(seconds, 1), "exit": code, "false_failures": false})
            print(f"{profile} run {number}/{runs}: {seconds:.1f} s, exit {code}, "
                  f"{len(false)} false failure(s)" + (": " + ", ".join(f["id"] for f in false) if false else ""),
                  flush=True)
    failing = [r for r in done if r["false_failures"]]
    return {"runs": runs, "runs_with_false_failures": len(failing),
            "false_failures_per_run": round(sum(len(r["false_failures"]) for r in done) / max(runs, 1), 3),
            "median_seconds": sorted(r["seconds"] for r in done)[len(done) // 2], "each": done}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", default=[f"{k}={v}" for k, v in DEFAULT_RUNS.items()],
                        help="PROFILE=N pairs (default: lab=20 lab-unprivileged=10 workshop=10 lxd-lab=5)")
    options = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    evidence = RESULTS / "soak-evidence"
    figures = {}
    for pair in options.runs:
        profile, _, count = pair.partition("=")
        figures[profile] = soak(profile, int(count), evidence)
        (RESULTS / "soak.json").write_text(json.dumps(figures, indent=2))
    for profile, figure in figures.items():
        print(f"{profile}: {figure['runs_with_false_failures']} of {figure['runs']} runs with a false failure "
              f"({figure['false_failures_per_run']} per run), median {figure['median_seconds']} s")
    return 1 if any(f["runs_with_false_failures"] for f in figures.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
