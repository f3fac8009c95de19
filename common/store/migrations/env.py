"""Alembic environment: annoflow passes an open connection in config.attributes."""

from __future__ import annotations

from alembic import context

from common.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - annoflow always passes one
    raise RuntimeError("run migrations through common.store.migrate(engine)")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
