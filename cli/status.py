"""``annoflow status``: stages, queue depths, throughput, failing tasks and active runs, live or once."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from cli.app import app, console, open_store, settings
from common.celery_app import DEAD_LETTER_QUEUE, broker_url, stage_queue_name
from common.enums import StageType, TaskStatus
from common.store import Store
from producer.observe.queue_depth import QueueReader, make_queue_reader
from producer.observe.status import StatusSnapshot, collect_status

__all__ = ["render_status", "status"]

_STATUSES = [s.value for s in TaskStatus]


def render_status(snap: StatusSnapshot) -> RenderableType:
    """The snapshot as rich tables: stages, queues, throughput, failing tasks, runs."""
    parts: list[RenderableType] = [Text(f"annoflow status at {snap.at:%Y-%m-%d %H:%M:%S %Z}", style="bold")]
    # Only the statuses some stage has, and the project column only when there are several:
    # the table must stay readable in an 80-column terminal.
    present = [k for k in _STATUSES if any(st.counts.get(k) for st in snap.stages)]
    several = len(snap.projects) > 1
    title = "stages" if several else f"stages of {', '.join(snap.projects) or 'no project'}"
    stages = Table(title=title, title_justify="left")
    for col in (*(["project"] if several else []), "stage", "type"):
        stages.add_column(col, no_wrap=True)
    for col in (*present, "total", "leased"):
        stages.add_column(col.lower(), justify="right")
    for st in snap.stages:
        counts = [str(st.counts.get(k, 0) or "") for k in present]
        head = [st.project] if several else []
        stages.add_row(*head, st.title, st.type, *counts, str(st.total), str(st.live_leases or ""))
    parts.append(stages)

    queues = Table(title="queues (messages waiting)", title_justify="left")
    queues.add_column("queue")
    queues.add_column("depth", justify="right")
    for name, n in sorted(snap.queues.items()):
        queues.add_row(name, str(n))
    queues.add_row(Text("delivered, not acked", style="dim"), str(snap.unacked))
    if snap.broker_error:
        queues.add_row(Text("broker unreachable", style="red"), snap.broker_error)
    parts.append(queues)
    if snap.queues.get(DEAD_LETTER_QUEUE):
        parts.append(Text("rejected results messages: annoflow dead-letters list", style="dim"))

    speed = Table(title="throughput (last minute, from the event history)", title_justify="left")
    for col in ("project", "events", "per second"):
        speed.add_column(col, justify="left" if col == "project" else "right")
    for t in snap.throughput:
        speed.add_row(t.project, str(t.events), f"{t.per_s:.2f}")
    parts.append(speed)

    if snap.failing:
        failing = Table(title="failing tasks (most recent first)", title_justify="left")
        for col in ("project", "task", "data", "stage", "state", "attempts", "last error"):
            failing.add_column(col, overflow="fold")
        for f in snap.failing:
            state = Text(f.state, style="red" if f.state == "failed" else "yellow")
            failing.add_row(f.project, f.task_uuid[:8], f.data_title, f.stage, state, str(f.attempts), f.error)
        parts.append(failing)
        parts.append(Text("failed tasks go again with: annoflow tasks retry --project NAME", style="dim"))

    runs = Table(title="active runs", title_justify="left")
    for col in ("run", "project", "kind", "name", "progress", "", "metrics"):
        runs.add_column(col)
    for r in snap.runs:
        numbers = ", ".join(f"{k}={v}" for k, v in sorted(r.metrics.items()) if not isinstance(v, (dict, list)))
        bar = ProgressBar(total=1.0, completed=r.progress, width=30)
        runs.add_row(r.id[:8], r.project or "", r.kind, r.name, bar, f"{r.progress:.0%}", numbers)
    if not snap.runs:
        runs.add_row(Text("none", style="dim"), "", "", "", "", "", "")
    parts.append(runs)
    return Group(*parts)


def _reader(store: Store, project: str | None) -> QueueReader:
    s = settings()
    # Brokers that cannot list their queues (AMQP) are asked for the agent stages' queues by name.
    chosen = [store.get_project(project)] if project else store.list_projects()
    queues = [
        stage_queue_name(p.name, st.title)
        for p in chosen
        for st in store.workflow(p.id).stages.values()
        if st.type is StageType.AGENT
    ]
    return make_queue_reader(broker_url(s), s.home, queues)


@app.command("status")
def status(
    project: Annotated[str | None, typer.Option("--project", help="Only this project (name or id)")] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until Ctrl-C")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.2, help="Seconds between refreshes")] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one snapshot as JSON (for scripts)")] = False,
    failing: Annotated[int, typer.Option("--failing", min=0, help="Show at most this many failing tasks")] = 10,
) -> None:
    """Stages (counts by status), queue depths, throughput, failing tasks and active runs."""
    store = open_store()
    reader = _reader(store, project)

    def snapshot() -> StatusSnapshot:
        return collect_status(store, reader, project=project, failing_limit=failing)

    if as_json:
        print(snapshot().model_dump_json(indent=2))
        return
    if not watch:
        console.print(render_status(snapshot()))
        return
    with Live(render_status(snapshot()), console=console, auto_refresh=False, screen=False) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(render_status(snapshot()), refresh=True)
        except KeyboardInterrupt:
            pass
