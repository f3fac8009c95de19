"""The applier's shared counters in Redis: gathered in memory, sent at most every quarter second."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from common.store.apply import ApplyOutcome
from producer.apply.stats import LAST_APPLIED_AT, RedisApplyStats
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


def test_a_flush_records_when_results_were_last_applied_not_when_it_was_sent(stats: RedisApplyStats) -> None:
    # Given an applier whose timed flush is far off
    stats.flush()
    stats.FLUSH_S = 3600.0
    # When results are applied, then a message with nothing applied (only stale results) follows
    before = time.time()
    stats.applied(ApplyOutcome(applied=3), 0.004)
    applied_by = time.time()
    time.sleep(0.05)
    stats.applied(ApplyOutcome(stale=1), 0.004)
    assert stats.client.hget(stats.key, LAST_APPLIED_AT) is None  # nothing sent yet
    stats.flush()
    # Then Redis holds the time of the apply, not of the stale message or the flush
    at = float(stats.client.hget(stats.key, LAST_APPLIED_AT) or 0)
    assert before <= at <= applied_by
    # And a flush with nothing applied since keeps that time
    stats.dead_letter()
    stats.flush()
    assert float(stats.client.hget(stats.key, LAST_APPLIED_AT) or 0) == at
