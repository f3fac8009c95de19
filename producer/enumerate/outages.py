"""Waiting out a broker or a store that does not answer, in the producer and the result applier.

Both run for days in a deployment; a Redis restart or a database failover must
not end them. What an outage raises is caught at the top of their loops, logged,
and tried again after a wait that doubles up to half a minute. Nothing is lost
meanwhile: a claimed batch that was never published is claimed again when its
leases expire, and a results message that was not applied stays on its queue.
"""

from __future__ import annotations

import logging
import threading

import redis
from kombu.connection import Connection
from kombu.exceptions import OperationalError

from common.errors import TransientError

__all__ = ["BROKER_ERRORS", "OUTAGES", "Backoff", "broker_unreachable"]

# What a broker that does not answer raises, through redis-py (the pipeline's own Redis calls) or kombu.
BROKER_ERRORS: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError, OperationalError)
# The same, or a store that does not answer (the store layer raises TransientError).
OUTAGES: tuple[type[Exception], ...] = (*BROKER_ERRORS, TransientError)


class Backoff:
    """Waits between tries during an outage: 0.5 s, doubling up to ``cap``; cut short by ``stop``."""

    def __init__(self, stop: threading.Event, log: logging.Logger, cap: float = 30.0) -> None:
        self.stop = stop
        self.log = log
        self.cap = cap
        self.tries = 0

    def wait(self, error: Exception) -> None:
        """Log ``error`` and wait before the next try (less if a stop is asked for)."""
        delay = min(self.cap, 0.5 * 2 ** min(self.tries, 8))
        self.tries += 1
        self.log.warning("broker or store unreachable (%s); trying again in %.1fs", error, delay)
        self.stop.wait(delay)

    def reset(self) -> None:
        """The last try worked: the next outage starts again from the shortest wait."""
        self.tries = 0


def broker_unreachable(broker_url: str, error: Exception) -> TransientError:
    """The error for a broker that did not answer: where it was (password hidden), why, and what to check."""
    where = Connection(broker_url).as_uri()  # as_uri() masks the password
    return TransientError(f"broker unreachable at {where}: {error}; check ANNOFLOW_BROKER_URL and that the broker runs")
