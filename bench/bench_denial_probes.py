"""Benchmark: the denial probes, side by side with the plain tools in the same run.

N running containers (overlay clones of the lab's gold image in root's lxcpath,
no network, named lxcbench-dpNN, removed at the end). Measured, in the same run:

1. the suite's probe (readers.denial: python3-lxc attach, six actions, the errno
   of each step) in every container, one after another, and its peak RSS;
2. the plain tools: one ``lxc-attach`` per container running the guest's own
   ``date -s``, ``mknod`` + ``head`` of the host's disk and ``dmesg`` (three of
   the six actions, no errno, only exit codes).

Target (issue 18): the probe's whole run under a second per container.
Usage (as root, after ./lxcc):

    .venv/bin/python bench/bench_denial_probes.py [--count 10]

It prints a summary and writes bench/results/denial_probes.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from lxc_compliance.lab.gold import GoldImage  # noqa: E402
from lxc_compliance.readers.denial import ProbeReport, host_disk  # noqa: E402
from lxc_compliance.readers.lxc import ROOT_LXC  # noqa: E402
from measure import timed  # noqa: E402

PREFIX = "lxcbench-dp"
PLAIN = ('for name in {names}; do lxc-attach -n "$name" -- sh -c '
         '\'date -s "$(date)"; mknod /dev/.bench b {major} {minor} && head -c1 /dev/.bench; rm -f /dev/.bench; '
         'dmesg | head -1\' > /dev/null 2>&1; done; true')
PROBES = ("import sys, time; sys.path.insert(0, {root!r}); "
          "from lxc_compliance.readers.denial import ProbeReport; "
          "[ProbeReport.run({lxcpath!r}, name, True, None) for name in {names!r}]")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10)
    options = parser.parse_args()
    gold = GoldImage("lxcc-gold-bookworm")
    gold.ensure()
    names = [f"{PREFIX}{i:02d}" for i in range(1, options.count + 1)]
    results: dict = {"count": options.count, "kernel": platform.release()}
    try:
        for name in names:
            subprocess.run(["lxc-copy", "-n", gold.name, "-N", name, "-s", "-B", "overlay"], check=True,
                           capture_output=True, timeout=120)
            config = ROOT_LXC.config_path(name)
            lines = [line for line in config.read_text().splitlines() if not line.startswith("lxc.net.0.")]
            config.write_text("\n".join(lines + ["lxc.net.0.type = empty"]) + "\n")
            subprocess.run(["lxc-start", "-n", name], check=True, capture_output=True, timeout=60)
        time.sleep(2)
        report = ProbeReport.run(ROOT_LXC.path, names[0], True, None)
        results["one_probe_evidence"] = report.raw
        code = PROBES.format(root=str(ROOT), lxcpath=str(ROOT_LXC.path), names=names)
        elapsed, peak, output, exit_code = timed([sys.executable, "-c", code], ROOT)
        results["suite_probes"] = {"seconds": round(elapsed, 2), "per_container_s": round(elapsed / len(names), 3),
                                   "peak_rss_kib": peak, "exit": exit_code}
        major, minor = host_disk()[0].split(":")
        plain = PLAIN.format(names=" ".join(names), major=major, minor=minor)
        elapsed, _, _, exit_code = timed(["bash", "-c", plain], ROOT)
        results["plain_lxc_attach_loop"] = {"seconds": round(elapsed, 2),
                                            "per_container_s": round(elapsed / len(names), 3), "exit": exit_code}
    finally:
        for name in names:
            subprocess.run(["lxc-stop", "-n", name, "-k"], capture_output=True, timeout=60)
            subprocess.run(["lxc-destroy", "-n", name], capture_output=True, timeout=120)
    out = ROOT / "bench/results/denial_probes.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    suite, plain = results["suite_probes"], results["plain_lxc_attach_loop"]
    print(f"{options.count} containers: suite probes {suite['seconds']} s ({suite['per_container_s']} s each, "
          f"six actions, errno each, peak RSS {suite['peak_rss_kib'] // 1024} MiB); plain lxc-attach loop "
          f"{plain['seconds']} s ({plain['per_container_s']} s each, three actions, exit codes only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
