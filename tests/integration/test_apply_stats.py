"""The applier's shared counters in Redis: gathered in memory, sent at most every quarter second."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from common.store.apply import ApplyOutcome
from producer.apply.stats import RedisApplyStats
from tests.servers import REDIS_URL, require_redis

pytestmark = pytest.mark.integration


@pytest.fixture
def stats() -> Iterator[RedisApplyStats]:
    require_redis()
    s = RedisApplyStats(f"{REDIS_URL}/9", key=f"annoflow:test:apply:{uuid.uuid4().hex}")
    yield s
    s.client.delete(s.key)


def test_counts_are_gathered_then_sent_in_one_flush(stats: RedisApplyStats) -> None:
    # Given an applier that just flushed (and whose next timed flush is far off, so a slow
    # machine cannot send the counts early)
    stats.flush()
    stats.FLUSH_S = 3600.0
    # When three messages are applied and one is dead-lettered
    for _ in range(3):
        stats.applied(ApplyOutcome(applied=2, stale=1), 0.004)
    stats.dead_letter()
    # Then nothing has reached Redis yet
    assert stats.read().counts["messages"] == 0
    # When the applier flushes (quiet queue or shutdown)
    stats.flush()
    # Then every count and the latency histogram are there
    totals = stats.read()
    assert totals.counts["messages"] == 4 and totals.counts["dead_letters"] == 1
    assert totals.counts["applied"] == 6 and totals.counts["stale"] == 3
    assert totals.seconds_count == 3 and totals.buckets[0.005] == 3 and totals.buckets[0.1] == 3
    # And a flush with nothing gathered changes nothing
    stats.flush()
    assert stats.read().counts["messages"] == 4


def test_counts_go_out_once_the_quarter_second_passed(stats: RedisApplyStats) -> None:
    # Given the last flush longer ago than FLUSH_S
    stats.flush()
    stats._flushed -= stats.FLUSH_S
    # When one message is applied
    stats.applied(ApplyOutcome(applied=1), 0.02)
    # Then it is sent at once
    assert stats.read().counts["applied"] == 1
