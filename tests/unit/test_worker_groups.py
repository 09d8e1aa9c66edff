"""What the suite relies on xdist for: tests of one xdist_group run on one worker
(a many-host run keeps each host's checks together so; the suite's own tests keep
the ones that change the host in one series). pytest 9.2 with pytest-xdist 3.8
splits the groups silently (pytest-xdist#1386): this is the test that notices."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

GROUPED = '''
import os
import pytest

@pytest.mark.xdist_group("one-host")
@pytest.mark.parametrize("n", range(8))
def test_grouped(n):
    with open(os.environ["WORKERS_FILE"], "a") as out:
        out.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")

@pytest.mark.parametrize("n", range(8))
def test_free(n):
    pass
'''


def test_a_group_runs_on_one_worker(tmp_path):
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    workers = tmp_path / "workers"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", "/dev/null", "--rootdir", str(tmp_path),
         "-n", "2", "--dist", "loadgroup", str(tmp_path / "test_grouped.py")],
        cwd=tmp_path, env={"WORKERS_FILE": str(workers), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ran_on = workers.read_text().split()
    assert len(ran_on) == 8
    assert len(set(ran_on)) == 1, f"one xdist_group ran on workers {sorted(set(ran_on))}: --dist loadgroup does not group"
