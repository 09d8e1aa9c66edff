"""Benchmark: the event's fleet, side by side with the plain tools in the same run.

1. Reading: ``pytest -m fleet`` on N defined containers against a shell loop
   doing the same reads (one ``lxc-info -c KEY...`` per container), and what N
   containers add to a fleet run over none (target: under 2 s for 40).
2. Starting: ``--start-fleet`` on the same N containers (DHCP on a bridge of
   its own) against ``lxc-autostart`` plus a shell loop waiting for every sshd
   banner (target ratio at most 1.2); the suite's peak RSS.

The containers are overlay clones of the lab's gold image in root's lxcpath,
named lxcbench-pcNN, removed at the end. Usage (as root, after ./lxcc):

    .venv/bin/python bench/bench_event_fleet.py [--count 40] [--no-start]

It prints a summary and writes bench/results/event_fleet.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from lxc_compliance.lab.gold import GoldImage  # noqa: E402
from lxc_compliance.lab.network import LabNetwork  # noqa: E402
from lxc_compliance.lab.samples import random_mac  # noqa: E402
from lxc_compliance.readers.fleet import KEYS  # noqa: E402
from measure import timed as measured  # noqa: E402


def timed(command: list[str], env: dict | None = None) -> tuple[float, int, str]:
    elapsed, peak, output, _ = measured(command, ROOT, env)
    return elapsed, peak, output

GOLD = "lxcc-gold-bookworm"
PREFIX = "lxcbench-pc"
LXCPATH = Path("/var/lib/lxc")
INOTIFY = Path("/proc/sys/fs/inotify/max_user_instances")

READ_LOOP = r"""
for config in /var/lib/lxc/lxcbench-pc*/config; do
    name=$(basename "$(dirname "$config")")
    lxc-info -P /var/lib/lxc -n "$name" -s $KEYS > /dev/null
done
"""
START_LOOP = r"""
set -u
started=$SECONDS
lxc-autostart -P /var/lib/lxc
deadline=$((SECONDS + 300))
for config in /var/lib/lxc/lxcbench-pc*/config; do
    name=$(basename "$(dirname "$config")")
    until ip=$(lxc-info -n "$name" -iH | head -n1) && [ -n "$ip" ] &&
          timeout 1 bash -c "exec 3<>/dev/tcp/$ip/22 && head -c 4 <&3" 2>/dev/null | grep -q SSH; do
        [ $SECONDS -lt $deadline ] || { echo "timeout on $name" >&2; exit 1; }
        sleep 0.1
    done
done
echo "all up after $((SECONDS - started)) s"
lxc-autostart -P /var/lib/lxc -s -t 30
"""


def make_fleet(count: int, bridge: str) -> list[str]:
    names = []
    for index in range(1, count + 1):
        name = f"{PREFIX}{index:02d}"
        subprocess.run(["lxc-copy", "-n", GOLD, "-N", name, "-s", "-B", "overlay"], check=True, capture_output=True)
        config = LXCPATH / name / "config"
        lines = [line for line in config.read_text().splitlines()
                 if not line.startswith(("lxc.net.0.hwaddr", "lxc.net.0.link", "lxc.start.auto"))]
        lines += [f"lxc.net.0.link = {bridge}", f"lxc.net.0.hwaddr = {random_mac('52:56')}", "lxc.start.auto = 1"]
        config.write_text("\n".join(lines) + "\n")
        names.append(name)
    return names


def remove_fleet(names: list[str]) -> None:
    for name in names:
        subprocess.run(["lxc-stop", "-n", name, "-k"], capture_output=True)
        subprocess.run(["lxc-destroy", "-n", name], capture_output=True)


def profile(folder: Path, bridge: str | None, pattern: str, subnet=None) -> Path:
    path = folder / f"bench-{uuid.uuid4().hex[:6]}.yaml"
    network = f"network: {{bridge: {bridge}, subnet: {subnet}}}\n" if bridge else ""
    path.write_text(f"extends: {ROOT / 'profiles' / 'kernel.yaml'}\ncategories: [fleet]\n"
                    f"host: {{containers: 500}}\n{network}"
                    f"fleet: {{lxcpaths: [root], pattern: '{pattern}', start_timeout_s: 120, start_budget_s: 300}}\n"
                    f"containers: {{ssh: {{user: student, password_env: LXCCB_PASSWORD}}}}\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--no-start", action="store_true", help="only the reading benchmark")
    args = parser.parse_args()
    gold = GoldImage(GOLD)
    gold.ensure()
    password = gold.prepare("student", None, "512M", "1G")
    original = INOTIFY.read_text()
    result: dict = {"host": platform.node(), "count": args.count}
    names: list[str] = []
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly"]
    try:
        INOTIFY.write_text(str(max(int(original), 6 * args.count + 64)))
        with LabNetwork(uuid.uuid4().hex[:10], containers=args.count) as lab, \
                tempfile.TemporaryDirectory(prefix="lxcc-bench-") as work:
            folder = Path(work)
            names = make_fleet(args.count, lab.bridge)
            keys = " ".join(f"-c {key}" for key in KEYS)
            loop = min(timed(["bash", "-c", READ_LOOP.replace("$KEYS", keys)])[0] for _ in range(3))
            empty = min(timed(pytest + [f"--profile={profile(folder, None, 'nosuch*')}", "-m", "fleet",
                                        f"--report-dir={folder}"])[0] for _ in range(3))
            full = [timed(pytest + [f"--profile={profile(folder, None, PREFIX + '*')}", "-m", "fleet",
                                    f"--report-dir={folder}"]) for _ in range(3)]
            suite_s = min(t for t, _, _ in full)
            result["read"] = {"shell_loop_s": round(loop, 3), "suite_no_containers_s": round(empty, 3),
                              "suite_s": round(suite_s, 3), "added_by_containers_s": round(suite_s - empty, 3),
                              "suite_peak_rss_mib": round(max(p for _, p, _ in full) / 1024, 1)}
            print(f"read {args.count}: shell loop {loop:.2f} s; suite {suite_s:.2f} s, {empty:.2f} s with no "
                  f"container: the fleet adds {suite_s - empty:.2f} s (target < 2 s)")
            if not args.no_start:
                start_loop, _, out = timed(["bash", "-c", START_LOOP])
                for name in names:  # what lxc-autostart -s left
                    subprocess.run(["lxc-stop", "-n", name, "-k"], capture_output=True)
                command = pytest + [f"--profile={profile(folder, lab.bridge, PREFIX + '*', lab.subnet)}", "-m", "fleet",
                                    "--start-fleet", f"--report-dir={folder}"]
                suite_start, peak, output = timed(command, {"LXCCB_PASSWORD": password})
                all_up = None
                for path in folder.glob("bench-*.json"):
                    checks = {c["id"]: c for c in json.loads(path.read_text())["checks"]}
                    metrics = (checks.get("fleet.start_time") or {}).get("metrics") or {}
                    all_up = metrics.get("all_up_s", all_up)
                loop_up = next((line.split()[-2] for line in out.splitlines() if line.startswith("all up after")), None)
                result["start"] = {"autostart_wait_and_stop_s": round(start_loop, 2), "loop_all_up_s": loop_up,
                                   "suite_s": round(suite_start, 2),
                                   "ratio": round(suite_start / start_loop, 2), "suite_all_up_s": all_up,
                                   "suite_per_container_s": round(suite_start / args.count, 3),
                                   "suite_peak_rss_mib": round(peak / 1024, 1)}
                print(f"start {args.count}: lxc-autostart + sshd loop + lxc-autostart -s {start_loop:.2f} s (all up after "
                      f"{loop_up} s); --start-fleet {suite_start:.2f} s (all up after {all_up} s, logins included), "
                      f"ratio {suite_start / start_loop:.2f} (target <= 1.2), peak RSS {peak / 1024:.0f} MiB")
    finally:
        remove_fleet(names)
        INOTIFY.write_text(original)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "event_fleet.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
