"""Small builders shared by tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest

from cli import app as cli
from cli import main as cli_main
from common.batches import BatchHeader
from common.enums import Role
from common.store import DataFile, DataUnit, ProjectRecord, Store
from common.workflow import Workflow


def make_units(titles: list[str]) -> list[DataUnit]:
    return [
        DataUnit(
            data_hash=str(uuid.uuid5(uuid.NAMESPACE_URL, t)),
            title=t,
            files={"image": DataFile(url=f"file:///data/{t}", original_name=t, is_primary=True)},
        )
        for t in titles
    ]


def make_project(
    store: Store, wf: Workflow, titles: list[str], name: str = "apples", users: dict[str, Role] | None = None
) -> ProjectRecord:
    project = store.create_project(name, wf)
    dataset = store.dataset(project.id, "fruit")
    store.add_data_units(project.id, dataset, make_units(titles))
    for email, role in (users or {}).items():
        store.set_role(project.id, email, role)
    return project


def batch_header(batch_id: str = "b1") -> BatchHeader:
    """The header of a one-task stage batch, for results messages built by hand."""
    return BatchHeader(
        batch_id=batch_id,
        project_id="p",
        project_name="apples",
        stage_uuid=str(uuid.uuid4()),
        stage_key="Pre-label",
        size=1,
        published_at=datetime.now(UTC),
        deadline=datetime.now(UTC),
    )


@contextmanager
def cli_settings(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> Iterator[None]:
    """Point the in-process CLI at ``values`` for one test: the other ANNOFLOW_ variables unset, settings re-read."""
    for key in [k for k in os.environ if k.startswith("ANNOFLOW_") and k not in values]:
        monkeypatch.delenv(key)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    cli.settings.cache_clear()
    cli_main.register()
    try:
        yield
    finally:
        cli.settings.cache_clear()
