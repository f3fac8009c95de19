"""What ``annoflow bench pipeline`` samples while it runs: CPU seconds per process tree, RSS, a thinned timeline.

With a PostgreSQL store it also counts the database server's CPU: the backends
connected to the store's database and the server's own processes (WAL writer,
checkpointer, background writer), read from /proc, so the server must run on
this machine (the benchmark's setup).
"""

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


# The PostgreSQL server's own processes, whose work is every database's (``postgres: <cluster>: <name>``).
_PG_AUX = ("checkpointer", "background writer", "walwriter", "autovacuum", "logical replication", "archiver")


def _postgres_cpu_s(database: str) -> dict[int, float]:
    """CPU seconds (user + system) of each ``postgres`` process that works for ``database``, by pid.

    A backend counts when it is connected to ``database``; the server's own
    processes (and autovacuum workers) count whatever database they serve.
    """
    out: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if Path(entry.path, "comm").read_text().strip() != "postgres":
                continue
            title = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        if not _serves(title, database):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(entry.name)] = (int(fields[11]) + int(fields[12])) / _TICKS
    return out


def _serves(title: str, database: str) -> bool:
    """Whether the ``postgres`` process of this title works for ``database`` (see :func:`_postgres_cpu_s`)."""
    # "postgres: 15/main: checkpointer" or "postgres: 15/main: USER DATABASE HOST(PORT) STATE";
    # the postmaster itself ("/usr/lib/postgresql/.../postgres -D ...") only forks.
    parts = title.split(": ", 2)
    if len(parts) < 3:
        return False
    what = parts[2].strip()
    words = what.split()
    return what.startswith(_PG_AUX) or (len(words) >= 2 and words[1] == database)


def _redis_cpu_s(client: redis.Redis) -> float:
    info: dict[str, Any] = client.info("cpu")
    return float(info.get("used_cpu_user", 0.0)) + float(info.get("used_cpu_sys", 0.0))


class Cpu:
    """CPU seconds spent by each part of a run between :meth:`start` and :meth:`stop`.

    Each named process counts with its descendants; a process that has any
    (the worker and its pool) also gets ``<name>_children``, their share. With
    ``postgres_db``, ``postgres`` is the database server's share (see
    :func:`_postgres_cpu_s`), counted per server process: one that ends during
    a period keeps the CPU it had at the last :meth:`sample`.
    """

    def __init__(self, client: redis.Redis, pids: dict[str, int], postgres_db: str | None = None) -> None:
        self.client, self.pids, self.postgres_db = client, pids, postgres_db
        self.begin: dict[str, float] = {}
        self.counted: dict[str, float] = {}
        self._pg_begin: dict[int, float] = {}
        self._pg_seen: dict[int, float] = {}

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

    def sample(self) -> None:
        """Note the database server's processes now (call it every second or so while a period runs)."""
        if self.postgres_db is not None and self.begin:
            self._pg_seen |= _postgres_cpu_s(self.postgres_db)

    def _postgres_period_s(self) -> float:
        """The server's CPU since :meth:`start`: per process, its last figure less the one it started with."""
        seen = self._pg_seen | _postgres_cpu_s(self.postgres_db or "")
        return sum(max(0.0, value - self._pg_begin.get(pid, 0.0)) for pid, value in seen.items())

    def start(self) -> None:
        self.begin = self._now()
        if self.postgres_db is not None:
            self._pg_begin = _postgres_cpu_s(self.postgres_db)
            self._pg_seen = dict(self._pg_begin)

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
        if self.postgres_db is not None:
            self.counted["postgres"] = self.counted.get("postgres", 0.0) + self._postgres_period_s()
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
