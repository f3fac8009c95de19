"""The store's engine and its transactions, with an unreachable database reported as transient.

:class:`StoreBase` is what every part of :class:`common.store.Store` builds on:
:meth:`StoreBase.read` and :meth:`StoreBase.write` open a transaction, and a
database that cannot be reached, is locked or is full raises
:class:`TransientError` so callers retry instead of treating the work as bad.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from common.errors import TransientError
from common.store.engine import is_sqlite
from common.store.wakeups import announce

__all__ = ["StoreBase"]


class StoreBase:
    """An engine and the read and write transactions every store operation runs in."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction.

        Raises:
            TransientError: the database cannot be reached (or is locked, or full).
        """
        with _unavailable_is_transient(self), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self, *, wake: bool = True) -> Iterator[Connection]:
        """A write transaction (SQLite: takes the write lock at BEGIN).

        Args:
            wake: wake the producers when it commits (:mod:`common.store.wakeups`);
                the producer's own claims and ledger writes say False.

        Raises:
            TransientError: the database cannot be reached (or is locked, or full);
                nothing was written.
        """
        with _unavailable_is_transient(self), self.engine.connect() as conn:
            conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                yield conn
                if wake:
                    announce(conn)

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.engine)


@contextmanager
def _unavailable_is_transient(store: StoreBase) -> Iterator[None]:
    """Turn the driver's "cannot reach / cannot write now" errors into :class:`TransientError`.

    A lost PostgreSQL connection, a locked or full SQLite file: retrying later may
    succeed, so callers (the result applier) retry or put the work back instead of
    treating it as bad data. Statements sent straight to the SQLite driver raise
    ``sqlite3.OperationalError`` rather than SQLAlchemy's wrapper; both count.
    """
    try:
        yield
    except (OperationalError, sqlite3.OperationalError) as e:
        raise TransientError(
            f"the store at {store.engine.url!r} is unavailable ({e}); retry once it is reachable"
        ) from e
