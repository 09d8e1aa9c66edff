"""Benchmark: ``pytest --profile=kernel`` (HTML and JSON written) against
Debian's ``lxc-checkconfig`` on the same machine, in the same run, and against
pytest's own floor: pytest and pytest-html running as many empty tests, with an
HTML report (the start-up and reporting the suite cannot go below).

Runs are interleaved so all see the same machine state; the figures are the
ratios of median wall times (the suite over the floor: target at most 1.10). Usage (after ``./lxcc`` has installed things):

    .venv/bin/python bench/bench_kernel.py [--runs 15] [--kernel-config PATH]

It prints a summary and writes bench/results/kernel.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lxc_compliance.readers import checkconfig  # noqa: E402
from lxc_compliance.readers.target import Target  # noqa: E402


def _timed(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=120)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--kernel-config", help="config for both tools (default: what they find)")
    args = parser.parse_args()
    script = shutil.which("lxc-checkconfig")
    if script is None:
        raise SystemExit("lxc-checkconfig is not installed: apt-get install lxc")

    env = dict(os.environ)
    # Python may cache bytecode here, as on any ordinary machine.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory(prefix="lxcc-bench-") as reports:
        suite = [sys.executable, "-m", "pytest", "-q", "--profile=kernel", f"--report-dir={reports}"]
        if args.kernel_config:
            suite.append(f"--kernel-config={args.kernel_config}")
            env["CONFIG"] = args.kernel_config
        _timed(suite, env)  # warm the bytecode caches once
        document = json.loads((Path(reports) / "kernel.json").read_text())
        floor_folder = Path(reports) / "floor"
        floor_folder.mkdir()
        (floor_folder / "test_empty.py").write_text(
            f"import pytest\n\n@pytest.mark.parametrize('n', range({len(document['checks'])}))\n"
            "def test_empty(n):\n    pass\n")
        floor = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(floor_folder),
                 "-c", os.devnull, f"--html={floor_folder}/report.html", "--self-contained-html",
                 str(floor_folder / "test_empty.py")]
        _timed(floor, env)
        times: dict[str, list[float]] = {"lxc-checkconfig": [], "suite": [], "pytest_floor": []}
        for _ in range(args.runs):
            times["lxc-checkconfig"].append(_timed([script], env))
            times["suite"].append(_timed(suite, env))
            times["pytest_floor"].append(_timed(floor, env))

    host = checkconfig.ScriptHost.live(Target("local://").lxc_version)
    script_items = checkconfig.items(checkconfig.run(host, env.get("CONFIG", checkconfig.DEFAULT_CONFIG)).lines)
    medians = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "benchmark": "kernel profile vs lxc-checkconfig",
        "host": platform.node(),
        "runs": args.runs,
        "median_s": {k: round(v, 4) for k, v in medians.items()},
        "min_s": {k: round(min(v), 4) for k, v in times.items()},
        "ratio": round(medians["suite"] / medians["lxc-checkconfig"], 2),
        "target_ratio": 4.0,
        "over_pytest_floor": round(medians["suite"] / medians["pytest_floor"], 2),
        "target_over_pytest_floor": 1.10,
        "items_checked": {"lxc-checkconfig": len(script_items), "suite": len(document["checks"])},
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "kernel.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"lxc-checkconfig {medians['lxc-checkconfig']:.3f} s ({len(script_items)} items), "
        f"suite {medians['suite']:.3f} s ({len(document['checks'])} checks, HTML and JSON written): "
        f"ratio {result['ratio']}x (target <= 4x); pytest's floor {medians['pytest_floor']:.3f} s "
        f"(as many empty tests, HTML written): {result['over_pytest_floor']}x (target <= 1.10x); "
        f"median of {args.runs} interleaved runs"
    )


if __name__ == "__main__":
    main()
