"""The tests' host lock (tests/support/hoststate.py), on a lock file of the test's own:
shared holds run side by side, a hold alone waits for them and they for it, nesting in
one process never waits on itself, and a shared hold changes nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import hoststate

pytestmark = pytest.mark.unit

SUPPORT = Path(hoststate.__file__).parent

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    import hoststate
    folder = Path(sys.argv[2])
    hoststate.LOCK, hoststate.GATE = folder / "lock", folder / "gate"
    modes, hold, out = sys.argv[3].split(","), float(sys.argv[4]), Path(sys.argv[5])
    states = [hoststate.HostState(shared=mode == "shared") for mode in modes]
    for state in states:
        state.__enter__()
    out.write_text(f"{time.monotonic()}\\n")
    time.sleep(hold)
    for state in reversed(states):
        state.__exit__(None, None, None)
    out.write_text(out.read_text() + f"{time.monotonic()}\\n")
""")


def _hold(tmp_path: Path, name: str, modes: str, hold: float) -> tuple[subprocess.Popen, Path]:
    out = tmp_path / f"{name}.times"
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(SUPPORT), str(tmp_path), modes, str(hold), str(out)])
    return process, out


def _times(process: subprocess.Popen, out: Path) -> tuple[float, float]:
    assert process.wait(30) == 0
    taken, given_back = map(float, out.read_text().split())
    return taken, given_back


def _started(out: Path) -> None:
    deadline = time.monotonic() + 10
    while not out.exists():
        assert time.monotonic() < deadline, f"{out.stem} never got the lock"
        time.sleep(0.02)


def test_shared_holds_overlap_and_a_hold_alone_waits_for_them(tmp_path):
    first, first_out = _hold(tmp_path, "first", "shared", 1.0)
    _started(first_out)
    second, second_out = _hold(tmp_path, "second", "shared", 0.1)
    _started(second_out)  # (a hold alone waiting at the gate first would queue it behind, as it should)
    alone, alone_out = _hold(tmp_path, "alone", "alone", 0.1)
    first_times, second_times, alone_times = _times(first, first_out), _times(second, second_out), _times(alone, alone_out)
    assert second_times[0] < first_times[1], "a second shared hold waited for the first"
    assert alone_times[0] >= max(first_times[1], second_times[1]), "a hold alone ran beside shared ones"


def test_a_shared_hold_waits_for_one_alone(tmp_path):
    alone, alone_out = _hold(tmp_path, "alone", "alone", 0.5)
    _started(alone_out)
    shared, shared_out = _hold(tmp_path, "shared", "shared", 0.1)
    assert _times(shared, shared_out)[0] >= _times(alone, alone_out)[1]


def test_nested_holds_in_one_process_never_wait_on_themselves(tmp_path):
    """A module's shared hold around a test that holds the host alone (upgraded for its
    time, so another process's shared hold waits), and shared inside alone."""
    nested, nested_out = _hold(tmp_path, "nested", "shared,alone,shared", 0.6)
    _started(nested_out)
    other, other_out = _hold(tmp_path, "other", "shared", 0.1)
    nested_times = _times(nested, nested_out)
    assert _times(other, other_out)[0] >= nested_times[1] - 0.05  # it got in only as the hold alone ended


def test_a_shared_hold_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(hoststate, "LOCK", tmp_path / "lock")
    monkeypatch.setattr(hoststate, "GATE", tmp_path / "gate")
    with hoststate.HostState(shared=True) as state, pytest.raises(RuntimeError, match="changes_host"):
        state.write(tmp_path / "file", "text")
    assert not (tmp_path / "file").exists()
