"""Commands of the queue pipeline: worker, produce, apply, run, demo."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.app import ProjectOpt, app, console, group, open_store, settings
from common.celery_app import PipelineSettings, broker_url, make_celery_app, transport_options
from common.enums import StageType
from common.gc_tuning import tune_gc
from common.loader import load_runner
from common.store import Store

if TYPE_CHECKING:
    from producer.embedded import RunSummary

__all__ = ["group"]

AgentsOpt = Annotated[str, typer.Option("--agents", help="The runner: package.module:runner")]
BatchOpt = Annotated[int, typer.Option("--task-batch-size", min=1, help="Tasks per message")]
InFlightOpt = Annotated[int, typer.Option("--max-in-flight", min=1, help="Unapplied messages per stage")]
RefreshOpt = Annotated[
    float | None, typer.Option("--refresh-every", help="Poll again every N seconds; unset: exit when drained")
]
RetriesOpt = Annotated[int, typer.Option("--num-retries", min=0, help="Retries of a failed task before it is failed")]
LeaseOpt = Annotated[float, typer.Option("--lease-seconds", min=1, help="Seconds a claim holds before re-publishing")]


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@app.command("worker")
def worker(
    agents: AgentsOpt,
    queues: Annotated[
        str | None, typer.Option("--queues", help="Comma-separated queues (default: one per stage)")
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Pool processes")] = 2,
    project: Annotated[str | None, typer.Option("--project", help="Project the queues are named after")] = None,
    pool: Annotated[str, typer.Option("--pool", help="prefork, or solo for debugging")] = "prefork",
    loglevel: Annotated[str, typer.Option("--loglevel")] = "INFO",
    stage_keys: Annotated[str | None, typer.Option("--stage-keys", hidden=True)] = None,
    bench_counter: Annotated[str | None, typer.Option("--bench-counter", hidden=True)] = None,
) -> None:
    """Run a Celery worker for the handlers in --agents (it never opens the store)."""
    from workers.main import start_worker

    start_worker(
        settings(),
        PipelineSettings(),
        agents,
        project=project,
        queues=[q for q in (queues or "").split(",") if q] or None,
        concurrency=concurrency,
        pool=pool,
        loglevel=loglevel,
        stage_keys=json.loads(stage_keys) if stage_keys else None,
        bench_counter_url=bench_counter,
    )


@app.command("produce")
def produce(
    project: ProjectOpt,
    agents: AgentsOpt,
    task_batch_size: BatchOpt = 100,
    max_in_flight: InFlightOpt = 8,
    refresh_every: RefreshOpt = None,
    lease_seconds: LeaseOpt = 600.0,
    max_tasks_per_stage: Annotated[int | None, typer.Option("--max-tasks-per-stage", min=1)] = None,
    metrics_port: Annotated[
        int, typer.Option("--metrics-port", envvar="ANNOFLOW_METRICS_PORT", help="Serve /metrics here; 0: off")
    ] = 0,
) -> None:
    """Claim the agent stages' tasks and publish them to the stage queues (SIGTERM: stop claiming, exit)."""
    from producer.enumerate.inflight import make_ledger
    from producer.enumerate.plan import plan_stages
    from producer.enumerate.produce import Producer
    from producer.lineage import AgentRun
    from producer.observe.metrics import start_producer_metrics

    _logging()
    s, pipeline = settings(), PipelineSettings()
    store = open_store()
    record = store.get_project(project)
    plans = plan_stages(load_runner(agents), store.workflow(record.id), record.name)
    producer = Producer(
        store,
        make_celery_app(s, pipeline),
        make_ledger(broker_url(s), s.home, store),
        record,
        plans,
        batch_size=task_batch_size,
        max_in_flight=max_in_flight,
        refresh_every=refresh_every,
        lease_seconds=lease_seconds,
        max_tasks_per_stage=max_tasks_per_stage,
        observer=start_producer_metrics(s, store, [p.queue for p in plans], metrics_port),
    )
    _stop_on_signals(producer.stop)
    # Only the applier (another process) sees outcomes: this run records what it read and published.
    agent_run = AgentRun(store, record, agents, {"command": "produce", "task_batch_size": task_batch_size})
    tune_gc()
    try:
        stats = producer.run()
    except Exception as e:
        agent_run.finish("FAILED", str(e), {"total": producer.stats.total_tasks})
        raise
    batches = sum(stats.batches.values())
    agent_run.finish(
        "SUCCEEDED", f"published {stats.total_tasks} task(s)", {"total": stats.total_tasks, "batches": batches}
    )
    console.print(f"published {stats.total_tasks} task(s) in {batches} message(s)")


@app.command("apply")
def apply(
    num_retries: RetriesOpt = 3,
    backoff: Annotated[float, typer.Option("--backoff", min=0, help="First retry waits this long (s)")] = 1.0,
    hold_seconds: Annotated[
        float, typer.Option("--hold-seconds", min=0, help="A task whose handler said 'stay' waits this long")
    ] = 60.0,
    group: Annotated[
        int,
        typer.Option(
            "--group",
            min=1,
            help="Redis: results messages taken, committed and acknowledged together (each still all or "
            "nothing); 1 gives every message its own transaction",
        ),
    ] = 64,
) -> None:
    """Consume the results queue and apply each message whole, in one transaction (SIGTERM: finish, exit)."""
    from producer.apply.applier import ResultApplier
    from producer.apply.stats import make_apply_stats
    from producer.enumerate.inflight import make_ledger

    _logging()
    s, pipeline = settings(), PipelineSettings()
    url = broker_url(s)
    store = open_store()
    applier = ResultApplier(
        store,
        url,
        transport_options(s, pipeline),
        make_ledger(url, s.home, store),
        num_retries=num_retries,
        backoff_s=backoff,
        hold_s=hold_seconds,
        group=group,
        observer=make_apply_stats(url),
    )
    _stop_on_signals(applier.stop)
    tune_gc()
    stats = applier.run()
    console.print(json.dumps(stats.as_dict()))


@app.command("run")
def run(
    project: ProjectOpt,
    agents: AgentsOpt,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Celery worker processes")] = 2,
    task_batch_size: BatchOpt = 100,
    max_in_flight: InFlightOpt = 8,
    refresh_every: RefreshOpt = None,
    num_retries: RetriesOpt = 3,
    lease_seconds: LeaseOpt = 600.0,
    max_tasks_per_stage: Annotated[int | None, typer.Option("--max-tasks-per-stage", min=1)] = None,
) -> None:
    """Run producer, applier and N worker processes until the agent stages are drained."""
    from cli.render_pipeline import render_summary
    from producer.embedded import EmbeddedOptions, run_embedded

    store = open_store()
    record = store.get_project(project)
    options = EmbeddedOptions(
        workers=workers,
        batch_size=task_batch_size,
        max_in_flight=max_in_flight,
        refresh_every=refresh_every,
        num_retries=num_retries,
        lease_seconds=lease_seconds,
        max_tasks_per_stage=max_tasks_per_stage,
    )
    tune_gc()
    with _progress() as progress:
        summary = run_embedded(
            settings(),
            PipelineSettings(),
            store,
            record,
            agents,
            options,
            on_tick=_stage_bars(progress, store, record.id),
        )
    render_summary(console, store, record, summary, command=_own_command())


def _stage_bars(progress: Progress, store: Store, project_id: str) -> Callable[[RunSummary], None]:
    """A tick callback that keeps one bar per agent stage: done (applied) of done + still waiting."""
    wf = store.workflow(project_id)
    stages = [s for s in wf.stages.values() if s.type is StageType.AGENT]
    bars: dict[str, TaskID] = {}

    def tick(summary: RunSummary) -> None:
        waiting = store.counts(project_id)
        for stage in stages:
            done = summary.done_by_stage.get(stage.uuid, 0)
            total = done + sum(waiting.get(stage.uuid, {}).values())
            if stage.uuid not in bars:
                bars[stage.uuid] = progress.add_task(stage.title, total=total)
            progress.update(bars[stage.uuid], completed=done, total=total)

    return tick


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


def _own_command() -> str:
    """How to run this same ``annoflow`` from the current folder: its name when PATH finds it, else its path."""
    own = Path(sys.argv[0]).resolve()
    if own.name == "__main__.py":  # python -m cli
        return f"{_relative(Path(sys.executable))} -m cli"
    found = shutil.which("annoflow")
    if found is not None and Path(found).resolve() == own:
        return "annoflow"
    return _relative(own)


def _relative(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)


@app.command("demo")
def demo(images: Annotated[int, typer.Option("--images", min=3, help="How many images to generate")] = 24) -> None:
    """Generate images, create project 'demo', run the demo agent through 2 worker processes."""
    from cli.render_pipeline import render_summary
    from producer.demo import AGENT_FILE, AGENTS, WORKFLOW, prepare_demo
    from producer.embedded import EmbeddedOptions, run_embedded

    home = settings().home / "demo"
    s, store, record = prepare_demo(home, images)
    console.print(f"demo project 'demo': {images} generated images in {home / 'images'}; agent {AGENTS}")
    options = EmbeddedOptions(workers=2, batch_size=4, max_in_flight=4)
    tune_gc()
    with _progress() as progress:
        summary = run_embedded(
            s, PipelineSettings(), store, record, AGENTS, options, on_tick=_stage_bars(progress, store, record.id)
        )
    wf = store.workflow(record.id)
    table = Table(title="where every task ended")
    for col in ("image", "stage", "status", "priority", "labels"):
        table.add_column(col)
    for t in store.iter_tasks(record.id):
        objects = store.get_label_row(record.id, t.data_hash).objects
        kinds = ", ".join(sorted({str(o.get("class_id", o.get("type", "?"))) for o in objects}))
        table.add_row(
            t.data_title,
            wf.stages[t.stage_uuid].title,
            t.status.value,
            f"{t.priority:.2f}",
            f"{len(objects)} ({kinds})" if objects else "0",
        )
    console.print(table)
    render_summary(console, store, record, summary, command=f"ANNOFLOW_HOME={home} {_own_command()}")
    console.print(f"  the agent: {_relative(AGENT_FILE)}; the workflow: {_relative(WORKFLOW)}")
