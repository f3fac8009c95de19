"""Building task specs from claimed tasks (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy import event

from common.errors import InvalidInputError
from common.models import TaskSpec
from common.specs import build_spec_json, build_specs
from common.store import DataFile, DataUnit, LabelRow, Store
from common.store.leases import claim_tasks
from common.workflow import Workflow, load_workflow
from tests.helpers import make_project

AGENTS = Path(__file__).parents[2] / "fixtures" / "agent_pipeline.yaml"


@pytest.fixture
def wf() -> Workflow:
    return load_workflow(AGENTS)


def test_specs_carry_task_files_labels_and_pathways_in_two_queries(store: Store, wf: Workflow) -> None:
    # Given three claimed tasks, one with saved labels
    project = make_project(store, wf, ["a.jpg", "b.jpg", "c.jpg"])
    stage = wf.stage("Pre-label")
    claimed = claim_tasks(store, project.id, stage.uuid, 10, lease_seconds=60)
    first = claimed[0]
    store.save_label_row(
        LabelRow(
            project_id=project.id, data_hash=first.data_hash, branch="main", objects=[{"name": "apple"}], version=0
        )
    )
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))

    # When specs are built with labels
    specs = build_specs(store, project, stage, claimed, include_labels=True, run_id="r1")

    # Then each spec carries its task, lease, file, pathways and labels, from two SELECTs
    assert [s.uuid for s in specs] == [UUID(t.uuid) for t in claimed]
    spec = specs[0]
    assert spec.lease_token == first.lease_token and spec.attempt == 1 and spec.status == "NEW"
    assert spec.stage_title == "Pre-label" and spec.project_name == "apples" and spec.run_id == "r1"
    assert set(spec.pathways) == {"labelled", "skip"}
    assert spec.files["image"].is_primary and spec.files["image"].url.endswith("/a.jpg")
    assert spec.labels is not None and spec.labels.objects == [{"name": "apple"}] and spec.labels.version == 1
    assert specs[1].labels is not None and specs[1].labels.objects == [] and specs[1].labels.version == 0
    assert sum(s.lstrip().upper().startswith("SELECT") for s in statements) == 2


def test_specs_without_labels_and_unclaimed_tasks(store: Store, wf: Workflow) -> None:
    # Given a claimed and an unclaimed task
    project = make_project(store, wf, ["a.jpg", "b.jpg"])
    stage = wf.stage("Pre-label")
    (claimed,) = claim_tasks(store, project.id, stage.uuid, 1, lease_seconds=60)
    unclaimed = next(t for t in store.iter_tasks(project.id) if t.uuid != claimed.uuid)

    # When specs are built without labels
    (spec,) = build_specs(store, project, stage, [claimed], include_labels=False)

    # Then the spec has no labels; and an unclaimed task is refused with how to fix it
    assert spec.labels is None
    with pytest.raises(InvalidInputError, match="claim_tasks"):
        build_specs(store, project, stage, [unclaimed], include_labels=False)


def test_spec_json_is_what_the_model_writes(store: Store, wf: Workflow) -> None:
    # Given claimed tasks with meta, several files, an assignee-free task, saved labels and run params
    project = store.create_project("pears", wf)
    units = [
        DataUnit(
            data_hash=f"00000000-0000-0000-0000-00000000000{i}",
            title=f"pear \u00e9 {i}",
            meta={"camera": "a", "n": i, "tags": ["x", "y"]} if i % 2 else {},
            files={
                "image": DataFile(url=f"https://example.test/{i}.jpg", is_primary=True),
                "mask": DataFile(url=f"https://example.test/{i}.png", original_name='m"ask'),
            },
        )
        for i in range(1, 5)
    ]
    store.add_data_units(project.id, store.dataset(project.id, "d"), units)
    stage = wf.stage("Pre-label")
    claimed = claim_tasks(store, project.id, stage.uuid, 10, lease_seconds=60)
    objects = [{"name": "pear", "points": [[0.1, 0.2]], "attrs": {"ripe": True, "note": None}}]
    store.save_label_row(
        LabelRow(project_id=project.id, data_hash=units[0].data_hash, branch="main", objects=objects, version=0)
    )

    # When the producer's JSON is built, with labels and parameters
    texts = build_spec_json(
        store, project, stage, claimed, include_labels=True, kind="totask.file", run_id="r9", params={"k": [1, 2]}
    )

    # Then each text holds exactly what TaskSpec.model_dump_json writes for the parsed spec
    assert len(texts) == len(claimed) == 4
    for text, task in zip(texts, claimed, strict=True):
        spec = TaskSpec.model_validate_json(text)
        assert json.loads(text) == json.loads(spec.model_dump_json())
        assert str(spec.uuid) == task.uuid and spec.lease_token == task.lease_token
        assert spec.created_at == task.created_at and spec.updated_at == task.updated_at
    first = TaskSpec.model_validate_json(texts[[t.data_hash for t in claimed].index(units[0].data_hash)])
    assert first.labels is not None and first.labels.objects == objects and first.labels.version == 1
    assert first.files["mask"].original_name == 'm"ask' and first.params == {"k": [1, 2]}
    assert {TaskSpec.model_validate_json(t).meta.get("n") for t in texts} == {1, 3, None}


def test_data_hashes_with_a_comma_are_found_too(store: Store, wf: Workflow) -> None:
    from common.specs import _unit_json

    # Given a data unit whose hash holds a comma (on PostgreSQL hashes travel comma-joined)
    project = make_project(store, wf, ["a.jpg"])
    odd = DataUnit(data_hash="x,y", title="odd", files={"image": DataFile(url="file:///odd.jpg", is_primary=True)})
    store.add_data_units(project.id, store.dataset(project.id, "odd"), [odd])
    claimed = claim_tasks(store, project.id, wf.stage("Pre-label").uuid, 10, lease_seconds=60)

    # When the units' JSON is read for both tasks
    units = _unit_json(store, {t.data_hash for t in claimed})

    # Then each unit is found, the one with a comma as well
    assert set(units) == {t.data_hash for t in claimed} and "x,y" in units


def test_a_large_fill_on_postgresql_reads_its_units_by_key_in_chunks(postgres_store: Store, wf: Workflow) -> None:
    # Given 1,200 claimed tasks (a fill past the size where the planner would scan the whole table)
    names = [f"img-{i:04d}.jpg" for i in range(1200)]
    project = make_project(postgres_store, wf, names)
    stage = wf.stage("Pre-label")
    claimed = claim_tasks(postgres_store, project.id, stage.uuid, 1200, lease_seconds=60)
    statements: list[str] = []
    event.listen(postgres_store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))

    # When their specs are built
    specs = build_specs(postgres_store, project, stage, claimed, include_labels=False)

    # Then every task gets its own unit's file, from three lookups of at most 500 units each
    assert [s.uuid for s in specs] == [UUID(t.uuid) for t in claimed]
    assert sorted(s.files["image"].url.rsplit("/", 1)[-1] for s in specs) == names
    assert all(s.data_title == s.files["image"].url.rsplit("/", 1)[-1] for s in specs)
    assert sum("FROM data_units" in s for s in statements) == 3
