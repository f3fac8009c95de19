"""Operations commands: schema migrations and a health check for containers."""

from __future__ import annotations

import typer
from kombu.connection import Connection
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from cli.app import app, console, settings
from common.errors import TransientError
from common.store.engine import make_engine, migrate
from producer.enumerate.outages import broker_unreachable

db_app = typer.Typer(help="The store's schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending schema migration to the configured store."""
    url = settings().resolved_store_url
    migrate(make_engine(url))
    console.print(f"store schema is up to date ({make_engine(url).url.render_as_string(hide_password=True)})")


@app.command("health")
def health(
    broker: bool = typer.Option(True, help="Also check the broker (off for store-only roles)."),
    store: bool = typer.Option(True, help="Also check the store (off for workers, which hold no store credentials)."),
    timeout: float = typer.Option(5.0, help="Seconds to wait for each server."),
) -> None:
    """Exit 0 when the store (and the broker) answer; used as the container health check."""
    s = settings()
    if store:
        engine = make_engine(s.resolved_store_url)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as e:
            raise TransientError(f"store unreachable: {e.orig}") from e
        finally:
            engine.dispose()
    if broker and not s.is_embedded_broker:
        try:
            with Connection(s.broker_url, connect_timeout=timeout) as conn:
                conn.ensure_connection(max_retries=1, timeout=timeout)
        except Exception as e:  # kombu raises transport-specific errors
            # The password stays masked: health output ends up in `docker inspect`.
            raise broker_unreachable(s.broker_url, e) from e
    console.print("ok")
