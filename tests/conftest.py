"""Shared fixtures: a store on SQLite and on PostgreSQL, seed workflows, users."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from common.store import Store
from common.store.engine import create_tables
from common.workflow import Workflow, load_workflow
from tests.servers import POSTGRES_URL, require_postgres

FIXTURES = Path(__file__).parent / "fixtures"


def _postgres_store() -> Iterator[Store]:
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    # Tables straight from the schema definitions (much faster than replaying every
    # migration per test); tests/unit/test_migrations.py proves both give the same schema.
    store = Store.open(POSTGRES_URL, schema=schema, upgrade=False)
    create_tables(store.engine)
    try:
        yield store
    finally:
        store.close()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The same store API on SQLite (a temp file) and PostgreSQL (a temp schema)."""
    if request.param == "sqlite":
        s = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
        yield s
        s.close()
    else:
        yield from _postgres_store()


@pytest.fixture
def seed_workflow() -> Workflow:
    """The workflow seed's graph: Annotate 1 -> Review 1 -> Complete, reject back."""
    return load_workflow(FIXTURES / "apples.yaml")


@pytest.fixture
def consensus_workflow() -> Workflow:
    return load_workflow(FIXTURES / "consensus.yaml")
