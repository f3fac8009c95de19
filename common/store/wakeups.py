"""Wake-ups: a commit that may give an agent stage new work wakes the producers at once.

Whatever routes a task into an agent stage (an SDK or CLI action, an import, an applied
result, ``tasks retry``) writes through :meth:`common.store.connections.StoreBase.write`,
so the signal lives with the store, and every writer sends it without knowing the broker:

- PostgreSQL: a write transaction ends with ``NOTIFY annoflow_work`` (``annoflow_work.<schema>``
  for a store in a schema of its own), which PostgreSQL delivers at commit (never for a
  rollback); a listener holds one connection that LISTENs.
  The producer's own claims do not notify (``write(wake=False)``).
- SQLite: every writer is on this host and writes this one file, whose
  ``PRAGMA data_version`` changes when another connection commits a change (a write
  that changes nothing leaves it alone); the listener reads it, a few microseconds a look.

A wake-up only says "look again". The producer's look every ``refresh_every`` seconds
stays the fallback, so a notification that is lost (a listener reconnecting, say)
costs at most that.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Any, Protocol

from sqlalchemy import Connection, Engine

__all__ = [
    "CHANNEL",
    "CHANNEL_OPTION",
    "NoSignal",
    "PostgresSignal",
    "SqliteSignal",
    "WorkSignal",
    "announce",
    "channel_of",
    "listen",
]

log = logging.getLogger("annoflow.store")

CHANNEL = "annoflow_work"
# The engine's execution option that names another channel (a store in a schema of its own).
CHANNEL_OPTION = "annoflow_channel"
# After a lost listener connection, the next try waits this long (the fallback poll covers the gap).
_RECONNECT_S = 1.0


class WorkSignal(Protocol):
    """Tells a producer that another process committed something since it last asked."""

    def pending(self) -> bool:
        """Whether a commit arrived since the last call (never blocks)."""
        ...

    def close(self) -> None:
        """Let go of the listening connection."""
        ...


def announce(conn: Connection) -> None:
    """Send the wake-up inside ``conn``'s write transaction (PostgreSQL; SQLite needs none)."""
    if conn.dialect.name != "sqlite":
        conn.exec_driver_sql(f'NOTIFY "{channel_of(conn)}"')


def channel_of(bind: Connection | Engine) -> str:
    """The channel a store's commits are announced on: :data:`CHANNEL`, or its schema's."""
    return str(bind.get_execution_options().get(CHANNEL_OPTION, CHANNEL))


def listen(engine: Engine) -> WorkSignal:
    """A listener for ``engine``'s database: LISTEN on PostgreSQL, ``data_version`` on a SQLite file."""
    if engine.dialect.name == "sqlite":
        path = engine.url.database or ""
        return SqliteSignal(path) if path and path != ":memory:" else NoSignal()
    return PostgresSignal(engine)


class NoSignal:
    """No wake-ups (an in-memory database): the producer's periodic look alone."""

    def pending(self) -> bool:
        return False

    def close(self) -> None:
        return None


class SqliteSignal:
    """Watches a SQLite file's ``data_version`` from a connection of its own."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._seen = self._version()

    def _version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def pending(self) -> bool:
        try:
            version = self._version()
        except sqlite3.Error as e:  # a locked or vanished file: the periodic look covers it
            log.debug("data_version not readable: %s", e)
            return False
        changed = version != self._seen
        self._seen = version
        return changed

    def close(self) -> None:
        self._conn.close()


class PostgresSignal:
    """LISTENs on :data:`CHANNEL` over one connection taken out of the engine's pool."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Any = None
        self._retry_at = 0.0
        self._connect()

    def _connect(self) -> None:
        try:
            raw = self._engine.raw_connection()
            conn: Any = raw.driver_connection
            raw.detach()  # this connection listens for as long as the producer runs
            conn.autocommit = True
            conn.execute(f'LISTEN "{channel_of(self._engine)}"')
            self._conn = conn
        except Exception as e:  # the database is down: the producer's own retries report it
            log.warning("cannot LISTEN for wake-ups (%s); looking every refresh_every until it can", e)
            self._conn = None
            self._retry_at = time.monotonic() + _RECONNECT_S

    def pending(self) -> bool:
        if self._conn is None:
            if time.monotonic() < self._retry_at:
                return False
            self._connect()
            # Whatever was committed while nobody listened: look once.
            return self._conn is not None
        pgconn = self._conn.pgconn
        try:
            pgconn.consume_input()  # reads what the socket holds, never waits
        except Exception as e:
            log.warning("lost the wake-up connection (%s); reconnecting", e)
            self._drop()
            return True
        woken = False
        while pgconn.notifies() is not None:
            woken = True
        return woken

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._retry_at = time.monotonic() + _RECONNECT_S
        try:
            conn.close()
        except Exception as e:
            log.debug("closing the wake-up connection: %s", e)

    def close(self) -> None:
        if self._conn is not None:
            self._drop()
