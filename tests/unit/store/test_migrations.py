"""The Alembic migrations build exactly the schema that common/store/schema.py defines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from common.store import Store
from common.store.engine import create_tables, migrate
from common.store.schema import metadata
from tests.servers import POSTGRES_URL, postgres_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        store = Store.open(f"sqlite:///{tmp_path / 'm.db'}")
        yield store
        store.close()
        return
    with postgres_schema("m") as schema:
        store = Store.open(POSTGRES_URL, schema=schema)
        try:
            yield store
        finally:
            store.close()


def test_migrations_match_the_schema_definitions(migrated: Store) -> None:
    # Given a store built by replaying every migration
    # When its live schema is compared with the table definitions
    with migrated.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    # Then nothing differs (a migration is missing or wrong otherwise)
    assert diff == []


def test_migrating_twice_changes_nothing(migrated: Store) -> None:
    # Given a migrated store holding a project
    from common.workflow import load_workflow

    wf = load_workflow(Path(__file__).parents[2] / "fixtures" / "apples.yaml")
    migrated.create_project("kept", wf)
    # When the migrations run again
    migrate(migrated.engine)
    # Then nothing was lost or changed
    assert [p.name for p in migrated.list_projects()] == ["kept"]


@pytest.mark.parametrize("build", ["migrations", "definitions"])
def test_tasks_on_postgresql_keep_room_for_hot_updates_and_moves(build: str) -> None:
    # Given a PostgreSQL store built by the migrations, or straight from the table definitions
    with postgres_schema("f") as schema:
        store = Store.open(POSTGRES_URL, schema=schema, upgrade=build == "migrations")
        try:
            if build == "definitions":
                create_tables(store.engine)
            # When the storage parameters of the tasks table and its indexes are read
            with store.read() as conn:
                rows = conn.execute(
                    text(
                        "SELECT c.relname, c.reloptions FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = :schema AND c.relname IN "
                        "('tasks', 'tasks_pkey', 'tasks_uuid_key', 'ix_tasks_project_id', 'uq_task_data_unit')"
                    ),
                    {"schema": schema},
                ).all()
        finally:
            store.close()
    options = {name: opts for name, opts in rows}
    # Then 60% of each page stays free for the new versions claims write (HOT updates)
    assert options["tasks"] == ["fillfactor=40"]
    # And the leaves of the indexes a move adds an entry to beside the old one are half free
    for name in ("tasks_pkey", "tasks_uuid_key", "ix_tasks_project_id"):
        assert options[name] == ["fillfactor=50"], name
    # While the others keep PostgreSQL's default
    assert options["uq_task_data_unit"] is None


def _built(backend: str, build: str, tmp_path: Path) -> Iterator[Store]:
    """A store on ``backend`` built by the migrations, or straight from the table definitions."""
    upgrade = build == "migrations"
    if backend == "sqlite":
        store = Store.open(f"sqlite:///{tmp_path / 'b.db'}", upgrade=upgrade)
        if not upgrade:
            create_tables(store.engine)
        yield store
        store.close()
        return
    with postgres_schema("b") as schema:
        store = Store.open(POSTGRES_URL, schema=schema, upgrade=upgrade)
        try:
            if not upgrade:
                create_tables(store.engine)
            yield store
        finally:
            store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("build", ["migrations", "definitions"])
def test_the_claim_order_index_leaves_out_completed_tasks(backend: str, build: str, tmp_path: Path) -> None:
    # Given a store built by the migrations, or straight from the table definitions
    for store in _built(backend, build, tmp_path):
        # When the claim-order index's definition is read back
        with store.read() as conn:
            if store.is_sqlite:
                query = "SELECT sql FROM sqlite_master WHERE name = 'ix_tasks_claim_order'"
            else:
                query = (
                    "SELECT indexdef FROM pg_indexes "
                    "WHERE indexname = 'ix_tasks_claim_order' AND schemaname = current_schema()"
                )
            sql = str(conn.execute(text(query)).scalar_one())
        # Then it holds only the tasks a claim may take: none completed
        assert "WHERE" in sql.upper() and "'COMPLETED'" in sql, sql
