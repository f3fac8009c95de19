"""PostgreSQL's pooled connections: pinged before use only after sitting idle, replaced when dead."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from common.errors import TransientError
from common.store import Store
from common.store import engine as engine_module
from tests.servers import POSTGRES_URL


def _backend_pid(store: Store) -> int:
    with store.read() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pid: int) -> None:
    """Drop one server connection from the outside, as a restart or an idle timeout would."""
    url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


@pytest.fixture
def pings(postgres_store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the pings the pool sends (each is a round trip before a transaction)."""
    sent: list[int] = []
    dialect: Any = postgres_store.engine.dialect
    ping = dialect.do_ping

    def counted(dbapi_conn: Any) -> bool:
        sent.append(1)
        return bool(ping(dbapi_conn))

    monkeypatch.setattr(dialect, "do_ping", counted)
    return sent


def test_a_connection_back_in_use_at_once_is_not_pinged(postgres_store: Store, pings: list[int]) -> None:
    # Given a store whose pooled connection was just used
    first = _backend_pid(postgres_store)

    # When transactions follow one another
    others = {_backend_pid(postgres_store) for _ in range(5)}

    # Then they reuse that connection without a ping before each
    assert others == {first}
    assert pings == []


def test_an_idle_connection_the_server_dropped_is_replaced_unseen(
    postgres_store: Store, pings: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a pooled connection that sat idle past the limit, and that the server has since dropped
    dropped = _backend_pid(postgres_store)
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 0.0)
    _terminate(dropped)

    # When the store is used again
    now = _backend_pid(postgres_store)

    # Then the ping found it dead and the transaction ran on a new connection
    assert now != dropped
    assert len(pings) == 1


def test_a_connection_dropped_while_in_use_fails_once_as_transient(postgres_store: Store, pings: list[int]) -> None:
    # Given a pooled connection in steady use that the server drops
    dropped = _backend_pid(postgres_store)
    _terminate(dropped)

    # When the next transaction runs on it, it fails as transient (callers retry), and nothing is pinged
    with pytest.raises(TransientError, match="unavailable"):
        _backend_pid(postgres_store)
    assert pings == []

    # Then the pool let go of it: the retry runs on a new connection
    assert _backend_pid(postgres_store) != dropped
