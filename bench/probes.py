"""What ``annoflow bench pipeline`` samples while it runs: CPU seconds per process tree, RSS, a thinned timeline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import redis

__all__ = ["Cpu", "rss_mb", "thin"]

_TICKS = os.sysconf("SC_CLK_TCK")
_TIMELINE_POINTS = 60


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cpu_tree_s(root: int) -> tuple[float, float]:
    """CPU seconds (user + system) of ``root`` itself and of its live descendants, from /proc."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces; the fields after its closing parenthesis do not.
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / _TICKS
    below, todo = 0.0, [child for child, parent in parents.items() if parent == root]
    while todo:
        pid = todo.pop()
        below += times.get(pid, 0.0)
        todo += [child for child, parent in parents.items() if parent == pid]
    return times.get(root, 0.0), below


def _redis_cpu_s(client: redis.Redis) -> float:
    info: dict[str, Any] = client.info("cpu")
    return float(info.get("used_cpu_user", 0.0)) + float(info.get("used_cpu_sys", 0.0))


class Cpu:
    """CPU seconds spent by each part of a run between :meth:`start` and :meth:`stop`.

    Each named process counts with its descendants; a process that has any
    (the worker and its pool) also gets ``<name>_children``, their share.
    """

    def __init__(self, client: redis.Redis, pids: dict[str, int]) -> None:
        self.client, self.pids = client, pids
        self.begin: dict[str, float] = {}
        self.counted: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, pid in self.pids.items():
            own, below = _cpu_tree_s(pid)
            out[name] = own + below
            if below:
                out[f"{name}_children"] = below
        out["redis"] = _redis_cpu_s(self.client)
        times = os.times()
        out["bench"] = times.user + times.system
        return out

    def start(self) -> None:
        self.begin = self._now()

    def stop(self) -> dict[str, float]:
        """The CPU seconds since :meth:`start` (plus any periods counted by :meth:`pause` before it)."""
        self.pause()
        return self.total()

    def pause(self) -> None:
        """Count the CPU since :meth:`start`; a later :meth:`start` counts a further period on top."""
        if not self.begin:  # not started, or paused already
            return
        end = self._now()
        for name, value in end.items():
            self.counted[name] = self.counted.get(name, 0.0) + value - self.begin.get(name, 0.0)
        self.begin = {}

    def total(self) -> dict[str, float]:
        """The CPU seconds of every period counted so far."""
        return {name: round(value, 2) for name, value in self.counted.items()}


def thin(points: list[list[float]]) -> list[list[float]]:
    """At most :data:`_TIMELINE_POINTS` evenly spaced samples, the last one kept."""
    if len(points) <= _TIMELINE_POINTS:
        return points
    step = len(points) / (_TIMELINE_POINTS - 1)
    return [points[int(i * step)] for i in range(_TIMELINE_POINTS - 1)] + [points[-1]]
