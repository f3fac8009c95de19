"""Commands of ToTask runs: ``totask run|worker``, ``runs list|show``."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.app import console, group, open_store, settings

__all__ = ["runs_app", "totask_app"]


totask_app = group("totask", "ToTask pre-annotation runs: from annotation files or model inference.")
runs_app = group("runs", "Runs (ToTask and others): parameters, metrics, per-task failures.")


@totask_app.command("run")
def totask_run(
    params_file: Annotated[Path, typer.Argument(help="Run parameters, .json or .yaml")],
    workers: Annotated[
        int, typer.Option("--workers", min=0, help="Worker processes to start; 0: use running ones")
    ] = 2,
    max_in_flight: Annotated[int, typer.Option("--max-in-flight", min=1, help="Unanswered batches at a time")] = 4,
    ready_timeout: Annotated[float, typer.Option("--ready-timeout", min=0, help="Wait for the model (s)")] = 180.0,
    stall_timeout: Annotated[float, typer.Option("--stall-timeout", min=1, help="Stop without answers (s)")] = 300.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
    project: Annotated[
        str | None,
        typer.Option(
            "--project",
            help="Run on this project instead of the parameters' one. A saved version (P@N) is read-only "
            "and refused: a run writes labels into its tasks.",
        ),
    ] = None,
) -> None:
    """Run a ToTask action with a live progress bar; print its metrics (exit 1 if it FAILED)."""
    from rich.logging import RichHandler

    from common.celery_app import PipelineSettings
    from common.totask.params import load_params
    from common.versions import resolve_target
    from producer.totask.action import ToTaskAction, ToTaskOptions

    # Per-task failures ("[Task <id>] Failed: ...") print above the live bar.
    handler = RichHandler(console=console, show_time=False, show_path=False, show_level=False, markup=False)
    logging.getLogger("annoflow.totask").addHandler(handler)
    logging.getLogger("annoflow.totask").setLevel(logging.WARNING)
    params = load_params(params_file)
    if project is not None:
        params = params.model_copy(update={"project": project})
    store = open_store()
    # Before a run is recorded: a malformed P@N, an unknown version or a saved one is one line, exit 2.
    resolve_target(store, str(params.project), "a ToTask run")
    options = ToTaskOptions(
        workers=workers, max_in_flight=max_in_flight, ready_timeout=ready_timeout, stall_timeout=stall_timeout
    )
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=as_json,  # --json: stdout is the result alone
    )
    bar: list[TaskID] = []

    def update(metrics: dict[str, Any]) -> None:
        done = metrics["success"] + metrics["failed"]
        text = f"{params.name}: {metrics['success']} ok, {metrics['failed']} failed"
        if not bar:
            bar.append(progress.add_task(text, total=metrics["total"] or None))
        progress.update(bar[0], completed=done, total=metrics["total"] or None, description=text)

    action = ToTaskAction(
        params,
        store=store,
        settings=settings(),
        pipeline=PipelineSettings(),
        options=options,
        on_progress=update,
    )

    def interrupt(_sig: int, _frame: FrameType | None) -> None:
        action.stop("interrupted (SIGINT/SIGTERM)")

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with progress:
            result = action.start()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    if as_json:
        print(json.dumps(result))
    else:
        colour = "green" if result["status"] == "SUCCEEDED" else "red"
        console.print(f"[{colour}]{result['status']}[/{colour}] run {result['run_id']}: {result['message']}")
        console.print(_metrics_table(result["metrics"]))
        if result["metrics"].get("failed"):
            console.print(f"per-task failures: annoflow runs show {result['run_id']}")
    if result["status"] != "SUCCEEDED":
        raise typer.Exit(1)


@totask_app.command("worker")
def totask_worker(
    methods: Annotated[str, typer.Option("--methods", help="file, inference, or file,inference")] = "file,inference",
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Pool processes")] = 2,
    pool: Annotated[str, typer.Option("--pool", help="prefork, or solo for debugging")] = "prefork",
    loglevel: Annotated[str, typer.Option("--loglevel")] = "INFO",
) -> None:
    """Run a Celery worker for the totask.file / totask.inference queues (it never opens the store)."""
    from common.celery_app import PipelineSettings
    from common.errors import InvalidInputError
    from workers.totask import start_totask_worker

    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    if not chosen or any(m not in ("file", "inference") for m in chosen):
        raise InvalidInputError(f"--methods {methods!r}: use file, inference or file,inference")
    start_totask_worker(
        settings(), PipelineSettings(), methods=chosen, concurrency=concurrency, pool=pool, loglevel=loglevel
    )


def _metrics_table(metrics: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None)
    for key in ("total", "success", "failed", "stand_by", "progress", "elapsed_s"):
        if key in metrics:
            table.add_row(key, str(metrics[key]))
    return table


@runs_app.command("list")
def runs_list(project: Annotated[str | None, typer.Option("--project", help="Project name or id")] = None) -> None:
    """List runs, newest first, with their status and metrics."""
    store = open_store()
    project_id = store.get_project(project).id if project else None
    runs = store.list_runs(project_id)
    table = Table(title=f"runs ({len(runs)})")
    for col in ("id", "kind", "name", "status", "success", "failed", "total", "created"):
        table.add_column(col)
    for r in runs:
        m = r.metrics
        table.add_row(
            r.id[:8],
            r.kind,
            r.name,
            r.status,
            str(m.get("success", "")),
            str(m.get("failed", "")),
            str(m.get("total", "")),
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)


@runs_app.command("show")
def runs_show(
    run: Annotated[str, typer.Argument(help="Run id, id prefix, or name")],
    failures: Annotated[int, typer.Option("--failures", min=0, help="Per-task failures to list")] = 50,
) -> None:
    """Show a run's parameters, metrics and per-task failures."""
    from common.store.totask_runs import list_failures

    store = open_store()
    record = store.get_run(run)
    console.print(f"run {record.id} ({record.kind}) [bold]{record.name}[/bold]: {record.status}")
    if record.message:
        console.print(f"  {record.message}", highlight=False)
    console.print("parameters:")
    console.print_json(json.dumps(record.params))
    console.print("metrics:")
    console.print(_metrics_table(record.metrics))
    count, listed = list_failures(store, record.id, failures)
    console.print(f"failed tasks: {count}")
    for f in listed:
        console.print(f"  [Task {f.task_uuid}] Failed: {f.error}", highlight=False, markup=False)
    if count > len(listed):
        console.print(f"  ... {count - len(listed)} more (--failures N)")
