"""kombu's Redis transport, with one Redis client per channel instead of one per operation.

kombu's Redis channel builds a new ``redis.Redis`` client for every publish,
every acknowledgement and every prefetch bookkeeping step
(``Channel.conn_or_acquire``). The client is only a thin wrapper around the
channel's connection pool, but building one copies redis-py's table of about
200 response callbacks: some 200 microseconds of CPU, several times per
message, in the producer, every worker and the result applier. A ``redis.Redis``
object is safe to share (each command takes a connection from the pool), so
this channel keeps one per pool.

``make_celery_app`` selects it for ``redis://`` brokers (``broker_transport``);
the result applier passes it to its kombu connection.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis

__all__ = ["TRANSPORT", "Channel", "Transport"]

# What kombu and Celery accept as ``transport`` / ``broker_transport``.
TRANSPORT = "common.redis_transport:Transport"


class Channel(kombu_redis.Channel):
    """A Redis channel that reuses its synchronous client."""

    _shared_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            # The event loop's client (BRPOP, pub/sub) has its own pool and life cycle.
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        client = self._shared_client
        # A channel replaces its pool after a connection error: follow it.
        if client is None or client.connection_pool is not self.pool:
            client = self._shared_client = super()._create_client()  # type: ignore[no-untyped-call]
        return client


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`Channel`."""

    Channel = Channel
