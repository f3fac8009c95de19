"""Render the end of a pipeline run: where every task is now, what the run did, where to look next."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from common.store import ProjectRecord, Store
from common.store.leases import list_failed
from producer.embedded import RunSummary

__all__ = ["render_summary"]


def render_summary(
    console: Console, store: Store, project: ProjectRecord, summary: RunSummary, command: str = "annoflow"
) -> None:
    """Print the task counts by stage and status, the run's counters and the next places to look.

    ``command`` starts the suggested command lines (the demo's store lives in a home of its own).
    """
    wf = store.workflow(project.id)
    counts = store.counts(project.id)
    table = Table(title=f"where the tasks of {project.name} are now")
    table.add_column("stage")
    table.add_column("type")
    table.add_column("tasks", justify="right")
    table.add_column("by status")
    for stage in wf.user_stages():
        by_status = counts.get(stage.uuid, {})
        table.add_row(
            stage.title,
            stage.type.value,
            str(sum(by_status.values())),
            ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())),
        )
    console.print(table)
    a = summary.applied
    rate = summary.produced.total_tasks / summary.seconds if summary.seconds else 0.0
    console.print(
        f"published {summary.produced.total_tasks} task(s) in {sum(summary.produced.batches.values())} message(s); "
        f"applied {a.applied}, retried {a.retried}, failed {a.failed}, stale {a.stale}, "
        f"dead letters {a.dead_letters}; {summary.seconds:.1f}s ({rate:.0f} tasks/s)"
    )
    failed = list_failed(store, project.id)
    console.print("next:")
    if failed:
        console.print(f"  {command} tasks failed --project {project.name}   ({len(failed)} failed task(s))")
    console.print(f"  {command} tasks list --project {project.name}     (every task, by stage)")
    export = f"export --project {project.name} --format coco -o {project.name}.coco.json"
    console.print(f"  {command} {export}   (the labels, also yolo, voc, labelstudio, jsonl)")
    console.print(f"  worker log: {summary.worker_log}")
