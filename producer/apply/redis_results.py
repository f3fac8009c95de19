"""The result applier's reader of the results queue on Redis: many messages per round trip.

kombu's Redis consumer takes one message per ``BRPOP``, copies it into its
unacknowledged hash and removes it again on ack: three or four round trips for
every message, most of the applier's time at ``--task-batch-size 1``. This
reader takes up to ``max_messages`` messages in one Lua call, moving them from
the queue into this applier's own list (``annoflow:applier:<id>:taken``); once
the applier has committed them, :meth:`ResultReader.finish` empties that list
in one ``MULTI`` (putting back any message the applier could not apply yet).

A heartbeat key (``annoflow:applier:<id>:alive``) is refreshed by a thread
every ``ttl_s / 4`` seconds and expires after ``ttl_s``. Every applier, at
start and every ``sweep_s`` seconds, puts the taken messages of appliers whose
heartbeat expired back at the head of the queue: a killed applier's messages
come back within about ``ttl_s`` seconds, and applying them again changes
nothing (their leases no longer match: stale). kombu's visibility timeout for
its own unacknowledged messages is an hour.

The messages stay in kombu's envelope (:mod:`common.redis_transport` writes it
as kombu would), so a kombu consumer and the queue-depth gauges read the same list.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.client import Pipeline

__all__ = ["APPLIERS_KEY", "ResultReader", "taken_key"]

log = logging.getLogger("annoflow.applier")

APPLIERS_KEY = "annoflow:appliers"  # the ids of appliers that may hold taken messages

# Move up to ARGV[1] messages from the queue's head (kombu publishes with LPUSH and
# consumes from the right) onto the taken list, oldest last.
_TAKE = """
local items = redis.call('RPOP', KEYS[1], ARGV[1])
if not items then return {} end
redis.call('LPUSH', KEYS[2], unpack(items))
return items
"""

# Put a taken list (newest on the left) back at the queue's head, oldest first
# in line, unless its applier is alive (ARGV[2] = '1' asks); forget the applier.
# Returns the number of messages put back, or -1 for a live applier.
_RETURN = """
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
local n = 0
while true do
  local items = redis.call('LRANGE', KEYS[2], 0, 999)
  if #items == 0 then break end
  redis.call('RPUSH', KEYS[1], unpack(items))
  redis.call('LTRIM', KEYS[2], #items, -1)
  n = n + #items
end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[4], ARGV[1])
return n
"""


def taken_key(applier_id: str) -> str:
    """The list of messages one applier took and has not acknowledged yet."""
    return f"annoflow:applier:{applier_id}:taken"


class ResultReader:
    """Takes results messages in groups for one applier; see the module docstring."""

    def __init__(
        self,
        client: redis.Redis,
        queue: str,
        *,
        max_messages: int = 64,
        ttl_s: float = 30.0,
        sweep_s: float = 10.0,
    ) -> None:
        self.client = client
        self.queue = queue
        self.max_messages = max_messages
        self.ttl_s = ttl_s
        self.sweep_s = sweep_s
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.taken_key = taken_key(self.id)
        self._alive_key = self._alive(self.id)
        # Not registered for the pipeline in take(): redis-py would first ask Redis whether the
        # script is loaded (SCRIPT EXISTS), a round trip of its own before every take.
        self._return = client.register_script(_RETURN)
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._last_sweep = 0.0

    @staticmethod
    def _alive(applier_id: str) -> str:
        return f"annoflow:applier:{applier_id}:alive"

    # ------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Announce this applier, start its heartbeat, and take back what dead appliers left."""
        self._heartbeat()
        self._beat = threading.Thread(target=self._beat_loop, name="applier-heartbeat", daemon=True)
        self._beat.start()
        self.sweep()

    def close(self) -> None:
        """Stop the heartbeat, put back anything still taken, and forget this applier."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join(5)
        try:
            back = self._return_taken(self.id, only_if_dead=False)
            self.client.delete(self._alive_key)
        except redis.RedisError as e:
            log.warning("could not hand back the taken results messages (%s); they return in %gs", e, self.ttl_s)
            return
        if back:
            log.info("put %d unapplied results messages back on %s", back, self.queue)

    def _heartbeat(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self._alive_key, "1", px=int(self.ttl_s * 1000))
        pipe.sadd(APPLIERS_KEY, self.id)
        pipe.execute()

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.ttl_s / 4):
            try:
                self._heartbeat()
            except redis.RedisError as e:
                log.warning("applier heartbeat failed (%s); retrying", e)

    # ----------------------------------------------------------------- taking
    def take(self, timeout: float, limit: int | None = None) -> list[bytes]:
        """Up to ``limit`` (default ``max_messages``) raw messages; waits at most ``timeout`` seconds for the first.

        One round trip: ``BLMOVE`` waits for the first message, and the Lua call
        queued behind it on the same connection takes whatever else is there.
        """
        if time.monotonic() - self._last_sweep >= self.sweep_s:
            self.sweep()
        pipe = self.client.pipeline(transaction=False)
        # Redis takes fractional seconds here; redis-py's stubs say int.
        pipe.blmove(self.queue, self.taken_key, timeout, "RIGHT", "LEFT")  # type: ignore[arg-type]
        limit = self.max_messages if limit is None else max(1, min(limit, self.max_messages))
        if limit > 1:
            # EVAL with the text (Redis caches the compiled script) needs no loading step.
            pipe.eval(_TAKE, 2, self.queue, self.taken_key, limit - 1)
        replies = pipe.execute()
        first: bytes | None = replies[0]
        more: list[bytes] = replies[1] if len(replies) > 1 else []
        return more if first is None else [first, *more]

    def finish(self, requeue: Sequence[bytes] = (), *, also: Callable[[Pipeline], object] | None = None) -> None:
        """Everything taken is done: drop it, except ``requeue``, which goes back to the queue's head.

        ``also`` may queue more commands (the in-flight ledger's) into the same round trip.
        """
        pipe = self.client.pipeline(transaction=True)
        for raw in requeue:
            pipe.rpush(self.queue, raw)
        pipe.delete(self.taken_key)
        if also is not None:
            also(pipe)
        pipe.execute()

    # -------------------------------------------------------------- recovery
    def recover(self) -> int:
        """After a lost connection, put back what this applier's list holds; return how many.

        A take whose reply never arrived may still have moved messages into the
        list; :meth:`finish` would drop them unapplied. Call this while holding
        nothing (between groups).
        """
        back = self._return_taken(self.id, only_if_dead=False)
        self._heartbeat()  # the return forgot this applier: announce it again
        if back:
            log.warning("put %d results messages back on %s after a lost connection", back, self.queue)
        return back

    def sweep(self) -> int:
        """Put back the taken messages of every applier whose heartbeat expired; return how many."""
        self._last_sweep = time.monotonic()
        back = 0
        for member in self.client.smembers(APPLIERS_KEY):
            applier_id = member.decode() if isinstance(member, bytes) else str(member)
            if applier_id == self.id:
                continue
            n = self._return_taken(applier_id, only_if_dead=True)
            if n > 0:
                log.warning("applier %s stopped; its %d results messages are back on %s", applier_id, n, self.queue)
                back += n
        return back

    def _return_taken(self, applier_id: str, *, only_if_dead: bool) -> int:
        keys: list[Any] = [self.queue, taken_key(applier_id), self._alive(applier_id), APPLIERS_KEY]
        return int(self._return(keys=keys, args=[applier_id, "1" if only_if_dead else "0"]))
