"""Open a database engine for the store and bring its schema up to date."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import ArgumentError, DisconnectionError, NoSuchModuleError, OperationalError

from common.errors import InvalidInputError, TransientError
from common.store.wakeups import CHANNEL, CHANNEL_OPTION

__all__ = ["create_tables", "is_sqlite", "make_engine", "migrate"]

_MIGRATIONS = Path(__file__).with_name("migrations")
# A pooled connection that sat idle longer than this is pinged before it is handed out
# (and replaced if the server dropped it); one back in use sooner is not.
PING_AFTER_IDLE_S = 5.0


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, schema: str | None = None) -> Engine:
    """Create an engine for ``url`` (``sqlite:///path`` or ``postgresql://...``).

    ``schema`` (PostgreSQL only) puts every table in that schema, which lets
    tests and tenants share one database.

    Raises:
        InvalidInputError: the URL is malformed or names an unknown database kind.
    """
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30, "isolation_level": None}
    elif schema:
        kwargs["connect_args"] = {"options": f"-csearch_path={schema}"}
        # Stores that share a database by schema wake only their own producers.
        kwargs["execution_options"] = {CHANNEL_OPTION: f"{CHANNEL}.{schema}"}
    try:
        engine = create_engine(url, **kwargs)
    except (ArgumentError, NoSuchModuleError) as e:
        raise InvalidInputError(
            f"store URL {url!r} is not valid: {e}; use sqlite:///PATH or postgresql://USER@HOST/DB"
        ) from e
    if is_sqlite(engine):
        _tune_sqlite(engine)
    else:
        _ping_after_idle(engine)
    return engine


def _ping_after_idle(engine: Engine) -> None:
    """Ping a pooled connection before use only when it sat idle for :data:`PING_AFTER_IDLE_S`.

    A ping on every checkout (``pool_pre_ping``) is a round trip before every
    transaction: on the result applier's path, one per group it applies. A
    connection the server dropped while it was in steady use fails its next
    statement instead, which the store reports as transient (the callers retry,
    and the pool drops every connection it had). One that sat idle, the
    connection a restart or an idle timeout is most likely to have cut, is
    pinged and, if dead, replaced before anyone sees it.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
            return  # fresh from the server, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as e:
            # The pool drops this connection and hands out another (a new one if need be).
            raise DisconnectionError(f"a pooled connection did not answer: {e}") from e


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        # New files only (ignored once a database has pages): 8 KiB pages suit the indexes
        # of 36-character uuid keys (a 1M-unit import takes 5-10% less CPU than with 4 KiB).
        cur.execute("PRAGMA page_size=8192")
        # WAL lets readers work while one writer commits; NORMAL sync is safe with WAL.
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Write transactions take the write lock up front: a deferred transaction
        # that reads and then writes can fail with SQLITE_BUSY instead of waiting.
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        # Straight to the driver: SQLAlchemy's result object would cost more than the BEGIN.
        conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def create_tables(engine: Engine) -> None:
    """Create every table from the schema definitions and mark the migrations as applied.

    Faster than :func:`migrate` on an empty database (tests use it); the result is the same.
    """
    from common.store.schema import metadata

    cfg = _alembic_config()
    with engine.begin() as conn:
        metadata.create_all(conn)
        cfg.attributes["connection"] = conn
        command.stamp(cfg, "head")


def migrate(engine: Engine) -> None:
    """Run every Alembic migration not yet applied to this database.

    Raises:
        TransientError: the database cannot be reached.
    """
    cfg = _alembic_config()
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except OperationalError as e:
        raise TransientError(f"cannot reach the store at {engine.url!r}: {e.orig}") from e
