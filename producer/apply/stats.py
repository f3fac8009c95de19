"""The result applier's counters and apply-latency histogram, shared with the producer's /metrics.

The applier and the producer are separate processes (separate containers), yet
the producer serves every number on one ``/metrics`` endpoint. So the applier
adds what it did to a Redis hash beside the broker (``annoflow:metrics:apply``,
one pipelined round trip at most every quarter second, and whenever the queue goes
quiet) and the producer reads it at scrape time. Counters only ever grow, so several appliers simply add up.
With the embedded broker, producer and applier share one process
(``annoflow run``) and the counts stay in memory.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from common.store.apply import ApplyOutcome

__all__ = [
    "APPLY_BUCKETS",
    "COUNTERS",
    "KEY",
    "LAST_APPLIED_AT",
    "ApplierStats",
    "ApplyObserver",
    "ApplyTotals",
    "MemoryApplyStats",
    "RedisApplyStats",
    "make_apply_stats",
]

log = logging.getLogger("annoflow.metrics")

KEY = "annoflow:metrics:apply"
LAST_APPLIED_AT = "last_applied_at"
# Seconds to apply one results message: its transaction's time (on Redis several
# messages share one transaction, and each is observed with that transaction's time).
APPLY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# What the counters count: messages read, and per-task outcomes of apply_results.
COUNTERS = ("messages", "applied", "stale", "retried", "failed", "dead_letters")


@dataclass
class ApplierStats:
    """Counts since the applier started."""

    messages: int = 0
    applied: int = 0
    stale: int = 0
    retried: int = 0
    failed: int = 0
    dead_letters: int = 0
    requeued: int = 0
    moved: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: ApplyOutcome) -> None:
        """Count what one transaction did."""
        self.applied += outcome.applied
        self.stale += outcome.stale
        self.retried += outcome.retried
        self.failed += outcome.failed
        for stage, n in outcome.moved.items():
            self.moved[stage] = self.moved.get(stage, 0) + n

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "applied": self.applied,
            "stale": self.stale,
            "retried": self.retried,
            "failed": self.failed,
            "dead_letters": self.dead_letters,
            "requeued": self.requeued,
        }


class ApplyObserver(Protocol):
    """What the result applier reports after each message."""

    def applied(self, outcome: ApplyOutcome, seconds: float, messages: int = 1) -> None:
        """``messages`` results messages were applied in one transaction that took ``seconds``."""
        ...

    def dead_letter(self) -> None:
        """A message could not be read or applied and went to the dead-letter queue."""
        ...

    def flush(self) -> None:
        """Make everything reported so far visible to readers (the queue went quiet, or shutdown)."""
        ...


@dataclass
class ApplyTotals:
    """The counters and the latency histogram, as read back."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    buckets: dict[float, int] = field(default_factory=lambda: dict.fromkeys(APPLY_BUCKETS, 0))
    seconds_sum: float = 0.0
    seconds_count: int = 0


def _deltas(outcome: ApplyOutcome, messages: int) -> dict[str, int]:
    return {
        "messages": messages,
        "applied": outcome.applied,
        "stale": outcome.stale,
        "retried": outcome.retried,
        "failed": outcome.failed,
    }


def _add(t: ApplyTotals, outcome: ApplyOutcome, seconds: float, messages: int) -> None:
    for name, n in _deltas(outcome, messages).items():
        t.counts[name] += n
    for le in APPLY_BUCKETS:
        if seconds <= le:
            t.buckets[le] += messages
    t.seconds_sum += seconds * messages
    t.seconds_count += messages


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class MemoryApplyStats:
    """The counters in this process (the embedded run, tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals = ApplyTotals()

    def applied(self, outcome: ApplyOutcome, seconds: float, messages: int = 1) -> None:
        with self._lock:
            _add(self._totals, outcome, seconds, messages)

    def dead_letter(self) -> None:
        with self._lock:
            self._totals.counts["messages"] += 1
            self._totals.counts["dead_letters"] += 1

    def flush(self) -> None:
        """Nothing to do: readers see the counts at once."""

    def read(self) -> ApplyTotals:
        with self._lock:
            t = self._totals
            return ApplyTotals(dict(t.counts), dict(t.buckets), t.seconds_sum, t.seconds_count)


class RedisApplyStats:
    """The counters in a Redis hash, shared by every applier and read by the producer.

    Increments gather here and go out in one pipeline at most every :data:`FLUSH_S`
    seconds: one round trip per results message cost the applier as much as a
    quarter of its time at one task per message.
    """

    FLUSH_S = 0.25

    def __init__(self, url: str, key: str = KEY) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.key = key
        self._pending = ApplyTotals()
        self._flushed = time.monotonic()
        self._last_applied_at: float | None = None  # wall clock of the last transaction not yet flushed

    def applied(self, outcome: ApplyOutcome, seconds: float, messages: int = 1) -> None:
        _add(self._pending, outcome, seconds, messages)
        if outcome.applied:
            self._last_applied_at = time.time()
        self._flush_if_due()

    def dead_letter(self) -> None:
        self._pending.counts["messages"] += 1
        self._pending.counts["dead_letters"] += 1
        self._flush_if_due()

    def _flush_if_due(self) -> None:
        if time.monotonic() - self._flushed >= self.FLUSH_S:
            self.flush()

    def flush(self) -> None:
        """Send the gathered increments in one pipeline (nothing when there are none)."""
        p, self._pending, self._flushed = self._pending, ApplyTotals(), time.monotonic()
        last, self._last_applied_at = self._last_applied_at, None
        pipe = self.client.pipeline(transaction=False)
        if last is not None:
            # When results were last applied (Unix seconds): a flush trails the commit by up to
            # FLUSH_S, or by the quiet queue's poll; ``bench pipeline`` ends its clock here.
            pipe.hset(self.key, LAST_APPLIED_AT, repr(last))
        for name, n in p.counts.items():
            if n:
                pipe.hincrby(self.key, name, n)
        for le, n in p.buckets.items():
            if n:
                pipe.hincrby(self.key, f"le:{le}", n)
        if p.seconds_count:
            pipe.hincrbyfloat(self.key, "seconds_sum", p.seconds_sum)
            pipe.hincrby(self.key, "seconds_count", p.seconds_count)
        if len(pipe):
            self._execute(pipe)

    @staticmethod
    def _execute(pipe: Any) -> None:
        # Counting must never stop applying: a lost increment is a smaller harm than a stuck applier.
        try:
            pipe.execute()
        except Exception as e:
            log.warning("applier metrics not recorded (Redis: %s)", e)

    def read(self) -> ApplyTotals:
        raw = {_text(k): _text(v) for k, v in self.client.hgetall(self.key).items()}
        totals = ApplyTotals()
        for name in COUNTERS:
            totals.counts[name] = int(raw.get(name, 0))
        for le in APPLY_BUCKETS:
            totals.buckets[le] = int(raw.get(f"le:{le}", 0))
        totals.seconds_sum = float(raw.get("seconds_sum", 0.0))
        totals.seconds_count = int(raw.get("seconds_count", 0))
        return totals


def make_apply_stats(broker_url: str) -> MemoryApplyStats | RedisApplyStats:
    """Shared counters on a Redis broker; in-process counters otherwise."""
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisApplyStats(broker_url)
    return MemoryApplyStats()
