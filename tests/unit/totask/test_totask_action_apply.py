"""A run's store side without a broker: claims by id, label backups, applying results, failures, rollback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from common.enums import Role
from common.models import LabelPayload, TaskCompletionResult, TaskSpec
from common.specs import build_specs
from common.store import LabelRow, Store
from common.store.schema import tasks
from common.store.totask_fast import apply_labels_fast
from common.store.totask_runs import (
    claim_by_ids,
    list_failures,
    release_leases,
    restore_labels,
    snapshot_labels,
)
from common.totask.queues import TotaskHeader, TotaskResults
from common.workflow import Workflow
from producer.totask.apply import InFlight, RunApplier
from tests.helpers import make_project

HUMAN = [{"id": "h1", "class_id": 7, "type": "classification"}]


def _result(spec: TaskSpec, ok: bool, objects: list[dict[str, Any]] | None = None) -> TaskCompletionResult:
    labels = None
    if ok:
        base = spec.labels or LabelPayload()
        labels = LabelPayload(branch=base.branch, version=base.version, objects=[*base.objects, *(objects or [])])
    return TaskCompletionResult(
        task_uuid=spec.uuid,
        stage_uuid=spec.stage_uuid,
        success=ok,
        error=None if ok else "Invalid JSON format in annotation file x.json",
        lease_token=spec.lease_token,
        labels=labels,
        run_id=spec.run_id,
    )


def _batch(run_id: str, project_id: str, results: list[TaskCompletionResult]) -> TotaskResults:
    header = TotaskHeader(
        batch_id="b1",
        run_id=run_id,
        project_id=project_id,
        method="file",
        size=len(results),
        reply_to="q",
        published_at=datetime.now(UTC),
    )
    return TotaskResults(header=header, results=results)


def test_apply_then_roll_back_restores_exactly_what_the_run_wrote(store: Store, seed_workflow: Workflow) -> None:
    # Given four tasks: A with a person's labels, B and C without, D held by another worker
    project = make_project(store, seed_workflow, ["A", "B", "C", "D"], users={"bot@x.org": Role.ANNOTATOR})
    by_title = {t.data_title: t for t in store.iter_tasks(project.id)}
    a, d = by_title["A"], by_title["D"]
    store.save_label_row(
        LabelRow(project_id=project.id, data_hash=a.data_hash, branch="main", objects=HUMAN, version=0)
    )
    with store.write() as conn:
        conn.execute(
            update(tasks)
            .where(tasks.c.id == d.id)
            .values(lease_token="Lother:1", lease_deadline=datetime.now(UTC) + timedelta(minutes=5))
        )
    run = store.create_run(project.id, "totask", "r", {})
    prefix = f"L{run.id.replace('-', '')}:"

    # When the run claims all four by id
    claimed = claim_by_ids(store, [t.id for t in by_title.values()], prefix, 60)
    # Then D (live lease elsewhere) is left alone
    assert sorted(t.data_title for t in claimed) == ["A", "B", "C"]
    assert all(t.lease_token == f"{prefix}{t.id}" for t in claimed)

    # When their specs are built with labels, snapshotted, and the workers' answers applied
    stage = store.workflow(project.id).stages[claimed[0].stage_uuid]
    specs = build_specs(store, project, stage, claimed, include_labels=True, kind="totask.file", run_id=run.id)
    snapshot_labels(store, run.id, specs)
    spec = {s.data_title: s for s in specs}
    applier = RunApplier(store, run.id)
    applier.expect("b1", InFlight({str(s.uuid): (str(s.data_hash), s.data_title) for s in specs}, 0.0))
    new = [{"id": "p1", "class_id": 1, "type": "classification", "provenance": {"run_id": run.id, "method": "file"}}]
    batch = _batch(
        run.id, project.id, [_result(spec["A"], True, new), _result(spec["B"], True, new), _result(spec["C"], False)]
    )
    applier.apply(batch)
    applier.apply(batch)  # delivered twice

    # Then A keeps the person's object beside the new one, B has the new one, C failed and is free again
    assert applier.counts.success == 2 and applier.counts.failed == 1 and applier.counts.duplicates == 1
    assert [o["id"] for o in store.get_label_row(project.id, a.data_hash).objects] == ["h1", "p1"]
    assert [o["id"] for o in store.get_label_row(project.id, by_title["B"].data_hash).objects] == ["p1"]
    c = store.get_task(by_title["C"].uuid)
    assert c.lease_token is None and c.last_error is not None and c.last_error.startswith("Invalid JSON")
    total, failures = list_failures(store, run.id)
    assert total == 1 and failures[0].task_uuid == c.uuid and failures[0].data_title == "C"
    # And every task stayed in its stage, A and B with their leases cleared
    assert {store.get_task(t.uuid).stage_uuid for t in claimed} == {a.stage_uuid}
    assert store.get_task(a.uuid).lease_token is None

    # When the run is rolled back
    released = release_leases(store, prefix)
    restored = restore_labels(store, run.id)
    # Then A is the person's labels again (a newer version), B's row is gone, D was never touched
    assert (released, restored) == (0, 2)
    row_a = store.get_label_row(project.id, a.data_hash)
    assert row_a.objects == HUMAN and row_a.version == 3
    assert store.get_label_row(project.id, by_title["B"].data_hash).version == 0
    assert store.get_task(d.uuid).lease_token == "Lother:1"


def test_a_label_row_saved_meanwhile_fails_only_that_task(store: Store, seed_workflow: Workflow) -> None:
    # Given a claimed task whose row a person saves after the spec was built
    project = make_project(store, seed_workflow, ["A", "B"])
    run = store.create_run(project.id, "totask", "r", {})
    prefix = f"L{run.id.replace('-', '')}:"
    claimed = claim_by_ids(store, [t.id for t in store.iter_tasks(project.id)], prefix, 60)
    stage = store.workflow(project.id).stages[claimed[0].stage_uuid]
    specs = build_specs(store, project, stage, claimed, include_labels=True, kind="totask.file", run_id=run.id)
    snapshot_labels(store, run.id, specs)
    a = specs[0]
    store.save_label_row(
        LabelRow(project_id=project.id, data_hash=str(a.data_hash), branch="main", objects=HUMAN, version=0)
    )
    applier = RunApplier(store, run.id)
    applier.expect("b1", InFlight({str(s.uuid): (str(s.data_hash), s.data_title) for s in specs}, 0.0))
    obj = [{"id": "p1", "class_id": 1, "type": "classification"}]

    # When both results arrive
    applier.apply(_batch(run.id, project.id, [_result(s, True, obj) for s in specs]))

    # Then the person's save wins, that task is a failure (and free), the other is applied
    assert applier.counts.success == 1 and applier.counts.failed == 1
    assert store.get_label_row(project.id, str(a.data_hash)).objects == HUMAN
    assert store.get_task(str(a.uuid)).lease_token is None
    _, failures = list_failures(store, run.id)
    assert "labels not written" in failures[0].error
    # And a rollback leaves the person's row alone (the run never wrote it)
    assert restore_labels(store, run.id) == 1
    assert store.get_label_row(project.id, str(a.data_hash)).objects == HUMAN


def test_fast_path_inserts_and_updates_rows_and_clears_leases(store: Store, seed_workflow: Workflow) -> None:
    # Given two claimed tasks: A with a person's labels (row version 1), B with none
    project = make_project(store, seed_workflow, ["A", "B"])
    by_title = {t.data_title: t for t in store.iter_tasks(project.id)}
    store.save_label_row(
        LabelRow(project_id=project.id, data_hash=by_title["A"].data_hash, branch="main", objects=HUMAN, version=0)
    )
    run = store.create_run(project.id, "totask", "r", {})
    claimed = claim_by_ids(store, [t.id for t in by_title.values()], f"L{run.id.replace('-', '')}:", 60)
    stage = store.workflow(project.id).stages[claimed[0].stage_uuid]
    specs = build_specs(store, project, stage, claimed, include_labels=True, kind="totask.file", run_id=run.id)
    snapshot_labels(store, run.id, specs)
    new = [{"id": "p1", "class_id": 1, "type": "bbox", "coordinates": {"x": 1.5, "y": 2, "width": 3, "height": 4}}]

    # When every result still fits (leases held, rows unchanged)
    applied = apply_labels_fast(store, [_result(s, True, new) for s in specs], run.id)

    # Then all are applied in one go: A's row updated (version 2), B's inserted (version 1)
    assert sorted(applied or []) == sorted(str(s.uuid) for s in specs)
    row_a = store.get_label_row(project.id, by_title["A"].data_hash)
    row_b = store.get_label_row(project.id, by_title["B"].data_hash)
    assert (row_a.objects, row_a.version) == ([*HUMAN, *new], 2)
    assert (row_b.objects, row_b.version) == (new, 1)
    # And the leases are cleared, the tasks still in their stage, one version further
    for t in claimed:
        now_t = store.get_task(t.uuid)
        assert now_t.lease_token is None and now_t.stage_uuid == t.stage_uuid and now_t.version == t.version + 1

    # When the same results arrive again (their leases are gone)
    # Then the fast path declines and writes nothing
    assert apply_labels_fast(store, [_result(s, True, new) for s in specs], run.id) is None
    assert store.get_label_row(project.id, by_title["B"].data_hash).version == 1

    # When the run is rolled back
    # Then both rows were marked applied with the write: A is the person's again, B's row is gone
    assert restore_labels(store, run.id) == 2
    assert store.get_label_row(project.id, by_title["A"].data_hash).objects == HUMAN
    assert store.get_label_row(project.id, by_title["B"].data_hash).version == 0
