"""What the benchmarks measure of a command: its wall time and its own peak memory."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import psutil


def timed(command: list[str], cwd: Path, env: dict | None = None, timeout: float = 1800) -> tuple[float, int, str, int]:
    """(wall seconds, the process's peak RSS in KiB, its output, its exit code), sampled every 50 ms.

    The peak is the command's own process: what it starts (containers, a browser) is not its memory.
    The output goes to a file (a pipe nobody reads while it runs would stop a command that prints
    more than the pipe holds: a 50-host run's failures); past TIMEOUT the command is killed."""
    with tempfile.TemporaryFile(mode="w+") as output:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, **(env or {})})
        watched, peak, deadline = psutil.Process(process.pid), 0, start + timeout
        try:
            while process.poll() is None:
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"{' '.join(command[:4])} ... still running after {timeout:g} s")
                try:
                    peak = max(peak, watched.memory_info().rss // 1024)
                except psutil.NoSuchProcess:
                    break
                time.sleep(0.05)
            process.wait(timeout=max(1.0, deadline - time.perf_counter()))
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
        elapsed = time.perf_counter() - start
        output.seek(0)
        return elapsed, peak, output.read(), process.returncode
