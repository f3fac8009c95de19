"""The benchmarks' child processes: ``annoflow ...`` in a process group of its own, stopped with SIGTERM."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

__all__ = ["spawn", "stop"]


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``annoflow ARGS`` (as ``python -m cli``), its output appended to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cli", *args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (finish what runs, then exit); SIGKILL after 20 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
