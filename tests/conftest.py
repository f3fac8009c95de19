"""Shared fixtures: a store on SQLite and on PostgreSQL, seed workflows, users."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.store import Store
from common.store.engine import create_tables
from common.workflow import Workflow, load_workflow
from tests.servers import POSTGRES_URL, postgres_schema

FIXTURES = Path(__file__).parent / "fixtures"

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist starts its workers with COLUMNS=80; the CLI's consoles, made at import, would keep
    # that width for good, and the tests that set their own COLUMNS would see tables cut at 80.
    os.environ.pop("COLUMNS", None)


def _postgres_store() -> Iterator[Store]:
    with postgres_schema("t") as schema:
        # Tables straight from the schema definitions (much faster than replaying every
        # migration per test); tests/unit/test_migrations.py proves both give the same schema.
        store = Store.open(POSTGRES_URL, schema=schema, upgrade=False)
        create_tables(store.engine)
        try:
            yield store
        finally:
            store.close()


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
def postgres_store() -> Iterator[Store]:
    """A store on PostgreSQL alone (a temp schema), for what only PostgreSQL does."""
    yield from _postgres_store()


@pytest.fixture
def seed_workflow() -> Workflow:
    """The workflow seed's graph: Annotate 1 -> Review 1 -> Complete, reject back."""
    return load_workflow(FIXTURES / "apples.yaml")


@pytest.fixture
def consensus_workflow() -> Workflow:
    return load_workflow(FIXTURES / "consensus.yaml")
