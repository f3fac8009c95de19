"""What the pipeline benchmark samples: RSS, CPU of a process tree, a thinned timeline."""

from __future__ import annotations

import os

from bench.probes import _cpu_tree_s, rss_mb, thin


def test_timeline_keeps_at_most_sixty_points_first_and_last() -> None:
    # Given a thousand samples
    points = [[float(i), float(i)] for i in range(1000)]
    # When the timeline is thinned
    kept = thin(points)
    # Then 60 evenly spaced points remain, from the first sample to the last
    assert len(kept) == 60 and kept[0] == points[0] and kept[-1] == points[-1]
    assert thin(points[:10]) == points[:10]


def test_this_process_has_memory_and_cpu_time() -> None:
    # Given this test process, which has run Python for a while
    busy = sum(i * i for i in range(200_000))
    # When its RSS and its tree's CPU time are read from /proc
    # Then both are positive, and a process that does not exist reads as zero
    assert busy > 0 and rss_mb(os.getpid()) > 1 and _cpu_tree_s(os.getpid())[0] > 0
    assert rss_mb(2**22 + 7) == 0.0 and _cpu_tree_s(2**22 + 7) == (0.0, 0.0)


def test_a_child_process_counts_apart_from_its_parent() -> None:
    # Given a child that burns CPU for a while and then waits to be read
    import subprocess
    import sys

    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
         "print('ready', flush=True)\nsys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        # When this process's tree is read
        own, below = _cpu_tree_s(os.getpid())
        # Then the child's CPU is in the descendants' share, not in this process's own
        assert below >= 0.25 and own > 0
    finally:
        child.communicate("")


class _FakeRedis:
    def info(self, section: str) -> dict[str, float]:
        return {"used_cpu_user": 0.0, "used_cpu_sys": 0.0}


def _burn(seconds: float) -> None:
    import time

    start = time.process_time()
    while time.process_time() - start < seconds:
        pass


def test_cpu_periods_add_up_and_what_happens_between_them_does_not_count() -> None:
    import redis

    from bench.probes import Cpu

    # Given a probe of this process counting two periods of 0.2 s of CPU, with 0.4 s burnt between them
    client: redis.Redis = _FakeRedis()  # type: ignore[assignment]
    cpu = Cpu(client, {"me": os.getpid()})
    cpu.start()
    _burn(0.2)
    cpu.pause()
    _burn(0.4)
    cpu.start()
    _burn(0.2)
    # When it stops
    total = cpu.stop()
    # Then it counts the two periods (about 0.4 s), not the 0.4 s between them; stopping again adds nothing
    assert 0.35 <= total["me"] < 0.7
    assert 0.35 <= total["bench"] < 0.7
    assert cpu.stop() == total


def test_the_postgres_share_is_the_servers_own_processes_and_this_databases_backends() -> None:
    from bench.probes import _serves

    # Given the process titles of a PostgreSQL server with backends for two databases
    titles = {
        "postgres: 15/main: walwriter": True,
        "postgres: 15/main: checkpointer": True,
        "postgres: 15/main: autovacuum worker bench": True,
        "postgres: 15/main: postgres bench 127.0.0.1(51234) idle": True,
        "postgres: 15/main: root bench [local] UPDATE": True,
        "postgres: 15/main: postgres other 127.0.0.1(51236) idle in transaction": False,
        "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main": False,
    }
    # When each is asked whether it works for the database "bench"
    # Then the server's own processes and the backends of "bench" do, the others do not
    assert {title: _serves(title, "bench") for title in titles} == titles
