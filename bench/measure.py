"""What the benchmarks measure of a command: its wall time and its own peak memory."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import psutil


def timed(command: list[str], cwd: Path, env: dict | None = None, timeout: float = 1800) -> tuple[float, int, str, int]:
    """(wall seconds, the process's peak RSS in KiB, its output, its exit code), sampled every 50 ms.

    The peak is the command's own process: what it starts (containers, a browser) is not its memory."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, **(env or {})})
    watched, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss // 1024)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    output = process.communicate(timeout=timeout)[0]
    return time.perf_counter() - start, peak, output, process.returncode
