"""Lab runs interrupted at random moments leave nothing behind: Ctrl-C to the
whole process group as a terminal sends it, or SIGTERM to pytest, at any point
from start-up to the end of the fleet."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from hoststate import HostState
from leftovers import run_leftovers

RUNS = 20
LONGEST_RUN_S = 9.0  # a lab run with 2 samples takes ~5 s here, an unprivileged one ~15 s


@pytest.fixture(autouse=True)
def quiet_host():
    with HostState():
        yield


def _dead_runs_leftovers() -> list[str]:
    from lxc_compliance.lab import claims, sweeper

    return [str(item) for item in sweeper.find() if not claims.alive(item.run)]


def _interrupted_run(profile: str, delay: float, how: str, reports) -> tuple[str | None, int]:
    """Start a lab run, interrupt it after DELAY seconds; (its run id if it printed one, exit code)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", f"--profile={profile}", "-m", "network or containers", "--samples=2",
         f"--report-dir={reports}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        # xdist workers ignore SIGINT, and children inherit that: a terminal's shell would not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(delay)
    if how == "ctrl-c":
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGTERM)
    try:
        output = process.communicate(timeout=180)[0]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output = process.communicate()[0]
        # Its dnsmasq and bridge would hold port 67 for the tests that come after this one.
        subprocess.run([sys.executable, "-m", "pytest", "--cleanup"], cwd=ROOT, capture_output=True, timeout=300)
        raise AssertionError(f"{how} after {delay:.2f} s: the run did not stop within 180 s; it printed:\n"
                             + output[-3000:])
    match = re.search(r"run id ([0-9a-f]{8})", output)
    return (match[1] if match else None), process.returncode


def test_random_interrupts_leave_nothing_behind(tmp_path):
    seed = int(time.time())
    chance = random.Random(seed)
    assert _dead_runs_leftovers() == [], "leftovers from before this test"
    stopped_mid_run = 0
    for number in range(RUNS):
        profile = "lab-unprivileged" if number % 5 == 4 else "lab"
        delay = chance.uniform(0.0, LONGEST_RUN_S * (1.6 if profile == "lab-unprivileged" else 1.0))
        how = chance.choice(["ctrl-c", "sigterm"])
        run_id, code = _interrupted_run(profile, delay, how, tmp_path / f"run{number}")
        context = f"run {number} (seed {seed}): {profile}, {how} after {delay:.2f} s, exit {code}"
        # 2: pytest's 'interrupted'; killed by the signal itself only before pytest
        # installed its handlers, when nothing exists yet.
        assert code in (0, 1, 2, -signal.SIGINT, -signal.SIGTERM), context
        stopped_mid_run += code == 2
        if run_id:
            assert run_leftovers(run_id) == [], context
        assert _dead_runs_leftovers() == [], context
    # A process the runs orphaned would write again after they ended (it happened:
    # lxc-create recreating a removed home): look once more a little later.
    time.sleep(2)
    assert _dead_runs_leftovers() == [], f"seed {seed}: something reappeared after the runs ended"
    assert stopped_mid_run >= RUNS // 2, f"only {stopped_mid_run} of {RUNS} runs were stopped before they ended (seed {seed})"
