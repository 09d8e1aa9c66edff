"""Benchmark: LXD hosts, side by side with the plain lxc client in the same run.

An LXD daemon of the benchmark's own (lab.lxd.LxdLab: its own LXD_DIR, a dir
pool, a bridge without NAT), removed at the end. Measured, interleaved, in the
same run:

1. auditing N instances (stopped, made from a tiny image: the audit reads
   their config, it never starts them): the suite's reads alone
   (readers.lxd.LxdServer.read), and the whole ``pytest -m "lxd or fleet or
   security"`` run (every lxd, fleet.lxd_* and security.lxd_* check, reports
   written), against ``lxc list --format json`` plus ``lxc config show
   --expanded`` per instance (target: at most 1.2x);
2. samples through LXD: ``pytest -m containers`` with ``containers.engine:
   lxd`` (launch, address, sshd, login and every container check, then delete)
   against ``lxc launch`` of the same image for each sample plus a shell loop
   waiting for every sshd banner, then ``lxc delete --force`` (target: at most
   1.2x).

Usage (as root, after ./lxcc):

    .venv/bin/python bench/bench_lxd.py [--instances 20] [--samples 4] [--runs 3]

It prints a summary and writes bench/results/lxd.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from lxc_compliance.lab.gold import GoldImage  # noqa: E402
from lxc_compliance.lab.lxd import LxdLab  # noqa: E402
from measure import timed  # noqa: E402

PLAIN_AUDIT = ("lxc list --format json > /dev/null; "
               "for name in $(lxc list --format csv -c n); do lxc config show --expanded \"$name\" > /dev/null; done")
PLAIN_SAMPLES = ("deadline=$((SECONDS + 180)); "
                 "for i in $(seq 1 {count}); do lxc launch {image} plain-$i -c limits.memory=512MiB > /dev/null & done; wait; "
                 "for i in $(seq 1 {count}); do "
                 "  until ip=$(lxc list plain-$i --format csv -c 4 | grep -o '^[0-9.]*') && [ -n \"$ip\" ] && "
                 "        timeout 1 bash -c \"head -c 4 < /dev/tcp/$ip/22\" 2>/dev/null | grep -q SSH; do "
                 "    [ $SECONDS -lt $deadline ] || {{ echo \"plain-$i: no sshd within 180 s\"; exit 1; }}; sleep 0.1; done; "
                 "done; lxc delete --force $(seq -f 'plain-%g' 1 {count})")


def tiny_image(lab: LxdLab) -> None:
    """An image of a few files, enough for instances that are read, never started."""
    work = Path(tempfile.mkdtemp(prefix="bench-", dir=lab.folder))
    with tarfile.open(work / "meta.tar", "w") as archive:
        data = json.dumps({"architecture": os.uname().machine, "creation_date": int(time.time())}).encode()
        info = tarfile.TarInfo("metadata.yaml")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    with tarfile.open(work / "rootfs.tar", "w") as archive:
        for name in ("etc", "bin", "sbin"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
    lab.lxc("image", "import", str(work / "meta.tar"), str(work / "rootfs.tar"), "--alias=tiny")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    gold = GoldImage("lxcc-gold-bookworm")
    gold.ensure()
    results: dict = {"instances": options.instances, "samples": options.samples, "runs": options.runs}
    with LxdLab(secrets.token_hex(4)) as lab, tempfile.TemporaryDirectory(prefix="lxcc-bench-") as scratch:
        env = {**os.environ, "LXD_DIR": str(lab.folder)}
        tiny_image(lab)
        for index in range(1, options.instances + 1):
            lab.lxc("init", "tiny", f"i{index:02d}", "-c", "limits.memory=512MiB")
        profile = Path(scratch) / "bench-lxd.yaml"
        profile.write_text(
            f"extends: lxd\ncategories: [lxd, fleet, security]\nhost: {{containers: {options.instances}}}\n"
            f"lxd: {{network: {lab.bridge}, memory_limit: 512MiB}}\nfleet: {{pattern: 'no-lxc-*'}}\n"
            "containers: {samples: 0}\n")
        sampling = Path(scratch) / "bench-samples.yaml"
        sampling.write_text(
            f"extends: lxd\ncategories: [containers]\nhost: {{containers: {options.samples}}}\n"
            f"lxd: {{network: {lab.bridge}}}\n"
            f"containers: {{samples: {options.samples}, concurrency: {options.samples}, boot_timeout_s: 90}}\n")
        reads = ("import sys; sys.path.insert(0, %r); from pathlib import Path; "
                 "from lxc_compliance.readers.lxd import LxdServer; LxdServer.read(Path(%r))") % (str(ROOT), str(lab.socket))
        audit = [sys.executable, "-m", "pytest", f"--profile={profile}", "-m", "lxd or fleet or security",
                 f"--report-dir={scratch}/reports", "-q", "-p", "no:cacheprovider"]
        samples = [sys.executable, "-m", "pytest", f"--profile={sampling}",
                   f"--report-dir={scratch}/reports", "-q", "-p", "no:cacheprovider"]
        # The first samples run imports the gold as image lxcc-gold-bookworm (cached for the rest, and the plain loop).
        subprocess.run(samples, cwd=ROOT, env=env, capture_output=True, timeout=900)
        series: dict[str, list[float]] = {key: [] for key in ("suite_reads", "suite_audit", "plain_audit",
                                                              "suite_samples", "plain_samples")}
        peaks: dict[str, int] = {}
        for _ in range(options.runs):
            for key, command in (("suite_reads", [sys.executable, "-c", reads]), ("suite_audit", audit),
                                 ("plain_audit", ["bash", "-c", PLAIN_AUDIT]), ("suite_samples", samples),
                                 ("plain_samples", ["bash", "-c", PLAIN_SAMPLES.format(count=options.samples,
                                                                                      image="lxcc-gold-bookworm")])):
                elapsed, peak, output, code = timed(command, ROOT, env=env)
                if code not in (0, 1):
                    raise SystemExit(f"{key} exited {code}: {output[-2000:]}")
                series[key].append(round(elapsed, 3))
                peaks[key] = max(peaks.get(key, 0), peak)
        checks = json.loads((Path(scratch) / "reports/bench-samples.json").read_text())["summary"]
        audited = json.loads((Path(scratch) / "reports/bench-lxd.json").read_text())["summary"]
    for key, values in series.items():
        results[key] = {"median_s": statistics.median(values), "runs_s": values, "peak_rss_kib": peaks[key]}
    results["audit_ratio"] = round(results["suite_audit"]["median_s"] / results["plain_audit"]["median_s"], 2)
    results["reads_ratio"] = round(results["suite_reads"]["median_s"] / results["plain_audit"]["median_s"], 2)
    results["samples_ratio"] = round(results["suite_samples"]["median_s"] / results["plain_samples"]["median_s"], 2)
    results["last_samples_summary"] = checks
    results["last_audit_summary"] = audited
    out = ROOT / "bench/results/lxd.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{options.instances} instances: suite reads {results['suite_reads']['median_s']} s, whole audit "
          f"{results['suite_audit']['median_s']} s, plain lxc list + config show loop {results['plain_audit']['median_s']} s "
          f"(audit {results['audit_ratio']}x, reads {results['reads_ratio']}x)")
    print(f"{options.samples} samples: suite {results['suite_samples']['median_s']} s, plain lxc launch + sshd loop "
          f"{results['plain_samples']['median_s']} s ({results['samples_ratio']}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
