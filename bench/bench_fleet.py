"""Benchmark: the suite's container phase against a plain shell loop doing the
same bring-up (clone every sample, start it, wait for every sshd banner,
destroy them), for N = 10, 20 and 40 samples, on the same machine in the same
run. Reports the ratio, the cost per container, the suite's peak memory, and
how long headless Chromium takes to open the run's HTML report.

    .venv/bin/python bench/bench_fleet.py [--sizes 10 20 40]

40 systemd containers need more inotify instances than stock Debian's 128: the
benchmark raises fs.inotify.max_user_instances for its run and restores it.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lxc_compliance.lab.gold import GoldImage  # noqa: E402
from lxc_compliance.lab.network import LabNetwork  # noqa: E402
from measure import timed  # noqa: E402

GOLD = "lxcc-gold-bookworm"
INOTIFY = Path("/proc/sys/fs/inotify/max_user_instances")

SHELL_LOOP = r"""
set -u
gold=$1 bridge=$2 prefix=$3 count=$4
for i in $(seq -w 1 "$count"); do
    name=$prefix-$i
    lxc-copy -n "$gold" -N "$name" -s -B overlay
    mac=$(openssl rand -hex 4 | sed -e 's/^\(..\)\(..\)\(..\)\(..\).*/52:56:\1:\2:\3:\4/')
    sed -i -e '/^lxc.net.0.hwaddr/d' -e '/^lxc.net.0.link/d' /var/lib/lxc/$name/config
    printf 'lxc.net.0.link = %s\nlxc.net.0.hwaddr = %s\n' "$bridge" "$mac" >> /var/lib/lxc/$name/config
    lxc-start -n "$name"
done
deadline=$((SECONDS + 300))
for i in $(seq -w 1 "$count"); do
    name=$prefix-$i
    until ip=$(lxc-info -n "$name" -iH | head -n1) && [ -n "$ip" ] &&
          timeout 1 bash -c "exec 3<>/dev/tcp/$ip/22 && head -c 4 <&3" 2>/dev/null | grep -q SSH; do
        [ $SECONDS -lt $deadline ] || { echo "timeout on $name" >&2; exit 1; }
        sleep 0.1
    done
done
"""


def _destroy(prefix: str) -> None:
    for config in Path("/var/lib/lxc").glob(f"{prefix}-*/config"):
        name = config.parent.name
        subprocess.run(["lxc-stop", "-n", name, "-k"], capture_output=True)
        subprocess.run(["lxc-destroy", "-n", name], capture_output=True)


def shell_loop(count: int) -> float:
    prefix = f"lxcb-{uuid.uuid4().hex[:6]}"
    with LabNetwork(uuid.uuid4().hex[:10]) as lab:
        start = time.perf_counter()
        try:
            subprocess.run(["bash", "-c", SHELL_LOOP, "loop", GOLD, lab.bridge, prefix, str(count)],
                           check=True, capture_output=True, timeout=900)
            _destroy(prefix)
        finally:
            _destroy(prefix)
        return time.perf_counter() - start


def suite(count: int, reports: str) -> tuple[float, int, dict]:
    """Wall time, the pytest process's peak RSS (KiB) and the summary.

    The peak is sampled from the pytest process itself: the containers' own
    processes (the memory check allocates past 512 MiB on purpose) are not the
    suite's memory."""
    command = [sys.executable, "-m", "pytest", "-q", "--profile=lab", "-m", "containers",
               f"--samples={count}", f"--report-dir={reports}"]
    elapsed, peak_kib, output, code = timed(command, ROOT)
    done = subprocess.CompletedProcess(command, code, output, "")
    document = json.loads((Path(reports) / "lab.json").read_text())
    if done.returncode != 0:
        raise SystemExit(f"the suite failed for {count} samples: {document['summary']}\n{done.stdout[-2000:]}")
    return elapsed, peak_kib, document["summary"]


def report_open_s(html: Path) -> float | None:
    """Seconds headless Chromium takes to load and render the report (None without chromium)."""
    import shutil

    chromium = shutil.which("chromium")
    if chromium is None:
        return None
    with tempfile.TemporaryDirectory(prefix="lxcc-bench-chromium-") as profile:
        start = time.perf_counter()
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", "--dump-dom", html.as_uri()], capture_output=True, timeout=120)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 20, 40])
    args = parser.parse_args()
    GoldImage(GOLD).ensure()
    original = INOTIFY.read_text()
    rows = []
    try:
        INOTIFY.write_text(str(max(int(original), 6 * max(args.sizes) + 64)))
        with tempfile.TemporaryDirectory(prefix="lxcc-bench-") as reports:
            suite(2, reports)  # the lab prepares the gold image: not part of the measurement
            for count in args.sizes:
                loop_s = shell_loop(count)
                suite_s, peak_kib, summary = suite(count, reports)
                html = Path(reports) / "lab.html"
                opened = report_open_s(html)
                rows.append({"report_kib": html.stat().st_size // 1024,
                             "report_open_s": round(opened, 2) if opened is not None else None,"samples": count, "shell_loop_s": round(loop_s, 2), "suite_s": round(suite_s, 2),
                             "ratio": round(suite_s / loop_s, 2), "suite_per_container_s": round(suite_s / count, 3),
                             "loop_per_container_s": round(loop_s / count, 3), "suite_peak_rss_mib": round(peak_kib / 1024, 1),
                             "checks": summary})
                print(f"N={count}: shell loop {loop_s:.2f} s, suite {suite_s:.2f} s ({sum(summary.values())} checks), "
                      f"ratio {suite_s / loop_s:.2f} (target <= 1.5), {suite_s / count:.2f} s per container, "
                      f"suite peak RSS {peak_kib / 1024:.0f} MiB, report {html.stat().st_size // 1024} KiB"
                      + (f" opens in {opened:.2f} s" if opened is not None else ""))
    finally:
        INOTIFY.write_text(original)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "fleet.json").write_text(json.dumps({"host": platform.node(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
