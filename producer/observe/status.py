"""One snapshot of a deployment: stages, queues, throughput, failing tasks and active runs.

``annoflow status`` renders it, ``annoflow status --json`` prints it, and the
producer's ``/metrics`` endpoint turns it into Prometheus gauges, so the three
never disagree. Everything comes from the store and the broker; nothing needs
the producer or the applier to be running.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, or_, select

from common.store import ProjectRecord, Store
from common.store.leases import FAILED, RETRY_PREFIX, count_live_leases
from common.store.lifecycle import now
from common.store.schema import events, runs, tasks
from producer.observe.queue_depth import QueueReader

__all__ = [
    "THROUGHPUT_WINDOW_S",
    "FailingTask",
    "RunStatus",
    "StageStatus",
    "StatusSnapshot",
    "Throughput",
    "collect_status",
    "run_progress",
]

# "Throughput over the last minute": events recorded in this window.
THROUGHPUT_WINDOW_S = 60


class StageStatus(BaseModel):
    """Task counts of one stage, by status, and how many a worker holds right now."""

    project: str
    stage_uuid: str
    title: str
    type: str
    counts: dict[str, int]
    total: int
    live_leases: int


class Throughput(BaseModel):
    """Task transitions (events) of one project in the last window."""

    project: str
    window_s: int
    events: int
    per_s: float


class FailingTask(BaseModel):
    """A task whose last attempt failed: waiting out a retry, or out of retries."""

    project: str
    task_uuid: str
    data_title: str
    stage: str
    state: str  # "retrying" (claimed again after the backoff) or "failed" (needs `annoflow tasks retry`)
    attempts: int
    error: str
    updated_at: datetime


class RunStatus(BaseModel):
    """A run that is still going (a ToTask run, an agent run)."""

    id: str
    project: str | None
    kind: str
    name: str
    status: str
    progress: float = Field(ge=0, le=1)
    metrics: dict[str, Any]
    updated_at: datetime


class StatusSnapshot(BaseModel):
    """Everything ``annoflow status`` shows, at one moment."""

    at: datetime
    projects: list[str]
    stages: list[StageStatus]
    queues: dict[str, int]
    unacked: int
    broker_error: str | None = None
    throughput: list[Throughput]
    failing: list[FailingTask]
    runs: list[RunStatus]


def run_progress(metrics: dict[str, Any]) -> float:
    """A run's progress as a fraction: its ``progress`` metric, else (success + failed) / total."""
    value = metrics.get("progress")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # Runs may record a percentage; a fraction never exceeds 1.
        fraction = float(value) / 100 if value > 1 else float(value)
    else:
        total = _number(metrics.get("total"))
        done = _number(metrics.get("success")) + _number(metrics.get("failed"))
        fraction = done / total if total else 0.0
    return min(max(fraction, 0.0), 1.0)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def collect_status(
    store: Store,
    reader: QueueReader | None,
    *,
    project: str | None = None,
    failing_limit: int = 10,
) -> StatusSnapshot:
    """Read one snapshot.

    Args:
        store: the store.
        reader: the broker's queue reader (None: report no queues).
        project: only this project (name or id); default every project.
        failing_limit: at most this many failing tasks, the most recent first.

    Raises:
        NotFoundError: ``project`` names no project.
    """
    at = now()
    chosen = [store.get_project(project)] if project else store.list_projects()
    by_id = {p.id: p.name for p in chosen}
    queues: dict[str, int] = {}
    unacked = 0
    broker_error = None
    if reader is not None:
        try:
            queues = reader.depths()
            unacked = reader.unacked()
        except Exception as e:  # the broker being down is itself status to show, not a crash
            broker_error = f"{type(e).__name__}: {e}"
    return StatusSnapshot(
        at=at,
        projects=[p.name for p in chosen],
        stages=[s for p in chosen for s in _stages(store, p)],
        queues=queues,
        unacked=unacked,
        broker_error=broker_error,
        throughput=_throughput(store, by_id, at),
        failing=_failing(store, by_id, failing_limit),
        runs=_runs(store, by_id),
    )


def _stages(store: Store, project: ProjectRecord) -> list[StageStatus]:
    wf = store.workflow(project.id)
    counts = store.counts(project.id)
    leases = count_live_leases(store, project.id)
    return [
        StageStatus(
            project=project.name,
            stage_uuid=stage.uuid,
            title=stage.title,
            type=stage.type.value,
            counts=counts.get(stage.uuid, {}),
            total=sum(counts.get(stage.uuid, {}).values()),
            live_leases=leases.get(stage.uuid, 0),
        )
        for stage in wf.stages.values()
    ]


def _throughput(store: Store, by_id: dict[str, str], at: datetime) -> list[Throughput]:
    if not by_id:
        return []
    since = at - timedelta(seconds=THROUGHPUT_WINDOW_S)
    with store.read() as conn:
        rows: dict[str, int] = dict(
            conn.execute(
                select(events.c.project_id, func.count())
                .where(events.c.project_id.in_(list(by_id)), events.c.at >= since)
                .group_by(events.c.project_id)
            ).all()
        )
    return [
        Throughput(
            project=name,
            window_s=THROUGHPUT_WINDOW_S,
            events=int(rows.get(pid, 0)),
            per_s=round(int(rows.get(pid, 0)) / THROUGHPUT_WINDOW_S, 3),
        )
        for pid, name in by_id.items()
    ]


def _failing(store: Store, by_id: dict[str, str], limit: int) -> list[FailingTask]:
    if not by_id or limit <= 0:
        return []
    query = (
        select(tasks)
        .where(
            tasks.c.project_id.in_(list(by_id)),
            tasks.c.last_error.is_not(None),
            or_(tasks.c.lease_token == FAILED, tasks.c.lease_token.startswith(RETRY_PREFIX)),
        )
        .order_by(tasks.c.updated_at.desc())
        .limit(limit)
    )
    titles: dict[str, dict[str, str]] = {}
    out = []
    with store.read() as conn:
        rows = conn.execute(query).mappings().all()
    for row in rows:
        pid = str(row["project_id"])
        if pid not in titles:
            titles[pid] = {s.uuid: s.title for s in store.workflow(pid).stages.values()}
        out.append(
            FailingTask(
                project=by_id[pid],
                task_uuid=str(row["uuid"]),
                data_title=row["data_title"],
                stage=titles[pid].get(str(row["stage_uuid"]), str(row["stage_uuid"])),
                state="failed" if row["lease_token"] == FAILED else "retrying",
                attempts=int(row["attempts"]),
                error=str(row["last_error"]),
                updated_at=row["updated_at"],
            )
        )
    return out


def _runs(store: Store, by_id: dict[str, str]) -> list[RunStatus]:
    query = select(runs).where(runs.c.status == "RUNNING").order_by(runs.c.created_at)
    with store.read() as conn:
        rows = conn.execute(query).mappings().all()
    out = []
    for row in rows:
        pid = str(row["project_id"]) if row["project_id"] is not None else None
        if pid is not None and pid not in by_id:
            continue
        metrics = dict(row["metrics"] or {})
        out.append(
            RunStatus(
                id=str(row["id"]),
                project=by_id.get(pid) if pid else None,
                kind=row["kind"],
                name=row["name"],
                status=row["status"],
                progress=run_progress(metrics),
                metrics=metrics,
                updated_at=row["updated_at"],
            )
        )
    return out
