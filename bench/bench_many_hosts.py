"""Benchmark: many hosts in one run, side by side with the plain tool in the same run.

N containers with sshd act as hosts (overlay clones of the lab's gold image on a
bridge of the bench's own, static addresses, a root key; as the tests build
them). Measured, each in the same run:

1. ``--profile=host --hosts=ONE`` (one host's kernel and host checks);
2. the same on all N hosts serially, and with ``-n auto``
   (target on 2 cores: N=20 hosts in at most 4 times the time of one);
3. the plain tool: Debian's lxc-checkconfig piped to each host over ssh
   (``ssh HOST sh -s < /usr/bin/lxc-checkconfig``), in a shell loop, which
   reads the kernel items only;
4. the two floors under any such run: ssh alone (``ssh HOST true`` to all N
   hosts at once, as the suite connects), and pytest alone (as many empty
   checks as the N-host run has, with the same HTML and JUnit reports).

Usage (as root, after ./lxcc):

    .venv/bin/python bench/bench_many_hosts.py [--count 20]

It prints a summary and writes bench/results/many_hosts.json (many_hosts_N.json for another N).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "tests" / "support"))
from lxc_compliance.lab.gold import GoldImage  # noqa: E402
from lxc_compliance.lab.network import LabNetwork  # noqa: E402
from measure import timed  # noqa: E402
from remote_hosts import ssh_hosts, with_uidmap_helpers  # noqa: E402

INOTIFY = Path("/proc/sys/fs/inotify/max_user_instances")
PLAIN = 'for host in {hosts}; do ssh -F {config} "$host" sh -s < /usr/bin/lxc-checkconfig > /dev/null || exit 1; done'
SSH_FLOOR = 'for host in {hosts}; do ssh -F {config} "$host" true & done; wait'
EMPTY_CHECKS = """import pytest


@pytest.mark.parametrize("check,host", [(c, h) for c in range({checks}) for h in range({hosts})], scope="module")
def test_empty(check, host):
    pass
"""


def audit(specs: list[str], config: Path, folder: Path, *extra: str) -> dict:
    command = [sys.executable, "-m", "pytest", "checks", "--profile=host", f"--report-dir={folder}",
               f"--hosts={','.join(specs)}", f"--ssh-config={config}", "-q", *extra]
    elapsed, peak, output, code = timed(command, ROOT)
    document = json.loads((folder / "host.json").read_text())
    return {"seconds": round(elapsed, 2), "peak_rss_kib": peak, "exit": code, "checks": len(document["checks"]),
            "unreachable": sum(not h["reachable"] for h in document["hosts"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20)
    options = parser.parse_args()
    gold = GoldImage("lxcc-gold-bookworm")
    gold.ensure()
    inotify = INOTIFY.read_text()
    work = Path(tempfile.mkdtemp(prefix="lxcc-bench-hosts-"))
    results: dict = {"count": options.count, "cores": len(os.sched_getaffinity(0)),
                     "kernel": platform.release()}
    try:
        INOTIFY.write_text(f"{max(int(inotify), 16 * options.count)}\n")  # restored below
        variants = {f"h{i:02d}": with_uidmap_helpers for i in range(1, options.count + 1)}
        with LabNetwork(uuid.uuid4().hex, dhcp_hosts=(20, 80)) as network, \
                ssh_hosts(gold, network, work / "ssh", variants) as (hosts, config):
            specs = [h.spec for h in hosts]
            results["one_host"] = audit(specs[:1], config, work / "one")
            results["serial"] = audit(specs, config, work / "serial", "-p", "no:xdist")
            results["parallel"] = audit(specs, config, work / "parallel", "-n", "auto")
            addresses = " ".join(h.address for h in hosts)
            plain = PLAIN.format(hosts=addresses, config=config)
            elapsed, _, output, code = timed(["bash", "-c", plain], ROOT)
            results["plain_lxc_checkconfig_loop"] = {"seconds": round(elapsed, 2), "exit": code}
            elapsed, _, _, code = timed(["bash", "-c", SSH_FLOOR.format(hosts=addresses, config=config)], ROOT)
            results["floor_ssh_to_all"] = {"seconds": round(elapsed, 2), "exit": code}
            per_host = results["serial"]["checks"] // options.count
            (work / "empty").mkdir()
            (work / "empty/test_empty.py").write_text(EMPTY_CHECKS.format(checks=per_host, hosts=options.count))
            elapsed, _, _, code = timed([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                                         str(work / "empty"), f"--html={work / 'empty/r.html'}",
                                         f"--junitxml={work / 'empty/r.xml'}"], work)
            results["floor_pytest_empty_checks"] = {"seconds": round(elapsed, 2), "checks": per_host * options.count,
                                                    "exit": code}
    finally:
        INOTIFY.write_text(inotify)
        shutil.rmtree(work, ignore_errors=True)
    one, serial, parallel = (results[k]["seconds"] for k in ("one_host", "serial", "parallel"))
    results["serial_over_one_host"] = round(serial / one, 2)
    results["parallel_over_one_host"] = round(parallel / one, 2)
    results["per_host_s"] = {"serial": round(serial / options.count, 2), "parallel": round(parallel / options.count, 2)}
    out = ROOT / f"bench/results/many_hosts{'' if options.count == 20 else f'_{options.count}'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"{options.count} hosts: serially {serial} s = {results['serial_over_one_host']} x one host ({one} s), "
          f"with -n auto {parallel} s = {results['parallel_over_one_host']} x; target at most "
          f"{4 if options.count <= 20 else 8} x; the plain lxc-checkconfig loop "
          f"{results['plain_lxc_checkconfig_loop']['seconds']} s; the floors: ssh to all hosts "
          f"{results['floor_ssh_to_all']['seconds']} s, pytest with {results['floor_pytest_empty_checks']['checks']} "
          f"empty checks {results['floor_pytest_empty_checks']['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
