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

Messages to queues already declared skip kombu's publishing machinery on
Redis: :func:`envelope` writes the envelope kombu would write (Celery's task
message from :func:`task_envelope`), and :func:`push_json` / :func:`push_many`
append it with one ``LPUSH`` (with any values the messages refer to set in the
same round trip; :func:`fetch` reads one back). ``Celery.send_task`` and ``Producer.publish``
cost about three times as much CPU, which is most of a message's cost at one
task per message. :func:`message_body` reads either kind.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import redis
from kombu.transport import redis as kombu_redis
from pydantic_core import to_json

if TYPE_CHECKING:
    from celery import Celery

__all__ = [
    "TRANSPORT",
    "Channel",
    "Transport",
    "envelope",
    "fetch",
    "message_body",
    "push_json",
    "push_many",
    "pushes_directly",
    "task_envelope",
]


log = logging.getLogger("annoflow.broker")

T = TypeVar("T")

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


def pushes_directly(app: Celery) -> bool:
    """Whether ``app``'s broker is Redis through this transport, so messages may be pushed straight."""
    return bool(app.conf.broker_transport == TRANSPORT)


def envelope(body: str, queue: str, headers: dict[str, Any] | None = None, **properties: Any) -> str:
    """The kombu envelope of a JSON message for ``queue`` (default exchange), as Redis stores it.

    The body stays text: kombu's consumers read a message without
    ``body_encoding`` as it is, so there is no base64 to encode and decode.
    pydantic-core writes the JSON (compact, UTF-8): about a third of the
    standard library's CPU for a body that must be escaped as one string.
    """
    return to_json(
        {
            "body": body,
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers or {},
            "properties": {
                **properties,
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": 0,
                "delivery_tag": str(uuid.uuid4()),
            },
        }
    ).decode()


# Celery's task headers, properties and body extras per (app, task name), with
# the per-message ids left to fill in: ``as_task_v2`` costs as much as the rest
# of a one-task message.
_TEMPLATES: weakref.WeakKeyDictionary[Celery, dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]] = (
    weakref.WeakKeyDictionary()
)


def _task_template(app: Celery, task_name: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    per_app = _TEMPLATES.setdefault(app, {})
    template = per_app.get(task_name)
    if template is None:
        message = app.amqp.as_task_v2(
            "", task_name, args=[], kwargs={}, kwargsrepr="{}", ignore_result=None
        )  # ignore_result None, as send_task: the worker goes by the task's own setting
        template = per_app[task_name] = (message.headers, message.properties, message.body[2])
    return template


def task_envelope(app: Celery, task_name: str, args: list[Any], queue: str, argsrepr: str) -> str:
    """The envelope of one Celery task message (protocol 2), as ``app.send_task`` would publish it.

    Celery builds the headers, properties and body extras once per task name
    (:meth:`celery.app.amqp.AMQP.as_task_v2`); each message gets its own task id.
    """
    headers, properties, embed = _task_template(app, task_name)
    task_id = str(uuid.uuid4())
    return envelope(
        to_json((args, {}, embed)).decode(),
        queue,
        {**headers, "id": task_id, "root_id": task_id, "argsrepr": argsrepr},
        **{**properties, "correlation_id": task_id},
    )


def message_body(raw: bytes) -> bytes:
    """The body of one kombu envelope as Redis holds it (base64-decoded where kombu encoded it).

    Raises:
        ValueError: ``raw`` is not a kombu envelope.
    """
    try:
        parsed = json.loads(raw)
        body = parsed["body"]
        encoding = parsed.get("properties", {}).get("body_encoding")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"not a kombu message envelope ({type(e).__name__}: {e})") from e
    if not isinstance(body, str):
        raise ValueError("not a kombu message envelope (its body is not text)")
    return base64.b64decode(body) if encoding == "base64" else body.encode()


# One client per broker URL and process (redis-py's pool opens new connections after a fork).
_CLIENTS: dict[str, redis.Redis] = {}
# Messages per LPUSH command (all of a push still go in one round trip).
_PUSH_CHUNK = 64
# Waits between tries while Redis is unreachable: about 80 s in all, as kombu's publish retries.
_RETRY_WAITS = [min(0.2 + 0.5 * i, 5.0) for i in range(20)]


def push_json(url: str, queue: str, body: str) -> None:
    """Append one JSON message to ``queue`` on the Redis at ``url``, as a kombu publish would.

    Raises:
        redis.ConnectionError: Redis stayed unreachable through every retry.
    """
    push_many(url, queue, [envelope(body, queue)])


def push_many(url: str, queue: str, envelopes: Sequence[str], values: Sequence[tuple[str, str, int]] = ()) -> None:
    """Append envelopes to ``queue`` in one round trip, retrying while Redis is unreachable.

    ``values`` (key, text, seconds to live) are set first in the same round
    trip, so a message never arrives before what it refers to.

    A try that failed may have delivered the messages already: each is then
    delivered twice, which the pipeline's leases make harmless.

    Raises:
        redis.ConnectionError: Redis stayed unreachable through every retry.
    """

    def push(client: redis.Redis) -> None:
        if not values and 0 < len(envelopes) <= _PUSH_CHUNK:
            # One command needs no pipeline (a worker's results message: 10-15% less client CPU).
            client.lpush(queue, *envelopes)
            return
        pipe = client.pipeline(transaction=False)
        for key, text, ttl in values:
            pipe.set(key, text, ex=max(ttl, 1))
        for start in range(0, len(envelopes), _PUSH_CHUNK):
            pipe.lpush(queue, *envelopes[start : start + _PUSH_CHUNK])
        pipe.execute()

    _retrying(url, f"publish to {queue}", push)


def fetch(url: str, key: str) -> bytes | None:
    """The value of ``key`` on the Redis at ``url`` (None if there is none), retrying while Redis is unreachable.

    Raises:
        redis.ConnectionError: Redis stayed unreachable through every retry.
    """
    value = _retrying(url, f"read {key}", lambda client: client.get(key))
    return value.encode() if isinstance(value, str) else value


def _retrying(url: str, what: str, call: Callable[[redis.Redis], T]) -> T:
    client = _CLIENTS.get(url)
    if client is None:
        client = _CLIENTS[url] = redis.Redis.from_url(url)
    for wait in [*_RETRY_WAITS, None]:
        try:
            return call(client)
        except (redis.ConnectionError, redis.TimeoutError) as e:
            if wait is None:
                raise
            log.warning("could not %s (%s); retrying in %.1fs", what, e, wait)
            time.sleep(wait)
    raise AssertionError("unreachable: the last wait re-raises")
