"""Commands for tasks: ``annoflow stages``, ``annoflow tasks list`` and ``annoflow task ACTION``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.table import Table

from cli.app import ProjectOpt, app, console, err_console, group, open_store, settings, store_session
from cli.render import counts_table, task_dict, task_line, tasks_table
from common.enums import Action, StageType, TaskStatus
from common.errors import InvalidInputError, NotFoundError
from common.store import ActionRequest, Store, TaskRecord, compile_filters
from common.store.filters import UNSET, named_filters
from common.store.leases import list_failed, release_failed

__all__ = ["task_app", "tasks_app"]

tasks_app = group("tasks", "List tasks, the failed ones too, and send failed tasks again.")
task_app = group("task", "Act on one task: assign, submit, approve, ...")

_PAGE = 1000
_FREE = (TaskStatus.NEW, TaskStatus.RELEASED, TaskStatus.REOPENED, TaskStatus.SKIPPED)


@app.command("stages")
def stages(
    project: str = typer.Option(..., "--project", help="Project name or UUID."),
    as_json: bool = typer.Option(False, "--json", help="Print {stage title: {status: count}} as JSON."),
) -> None:
    """Count a project's tasks per stage and status (routers hold no tasks and are not listed)."""
    with store_session() as store:
        target = store.get_project(project)
        wf = store.workflow(target.id)
        counts = store.counts(target.id)
    if as_json:
        typer.echo(json.dumps({s.title: counts.get(s.uuid, {}) for s in wf.user_stages()}))
        return
    console.print(counts_table(target, wf, counts))


def _pages(
    store: Store, project_id: str, stage: str | None, where: Any, after: int, limit: int
) -> Iterator[TaskRecord]:
    # Keyset pages of at most _PAGE rows: memory stays flat whatever --limit says.
    left = limit
    while left > 0:
        page = store.tasks_page(project_id, stage, where, after, min(_PAGE, left))
        yield from page
        if len(page) < min(_PAGE, left):
            return
        after, left = page[-1].id, left - len(page)


@tasks_app.command("list")
def tasks_list(
    project: str = typer.Option(..., "--project", help="Project name or UUID."),
    stage: str | None = typer.Option(None, "--stage", help="Stage title or UUID [default: every stage]."),
    status: list[TaskStatus] | None = typer.Option(None, "--status", case_sensitive=False, help="Repeatable."),
    assignee: str | None = typer.Option(None, "--assignee", help="EMAIL, or 'none' for unassigned tasks."),
    data_title: str | None = typer.Option(None, "--data-title", help="Part of the data unit's title."),
    dataset: str | None = typer.Option(None, "--dataset", help="Dataset name or UUID."),
    limit: int = typer.Option(50, "--limit", min=1, help="Show at most this many tasks."),
    after: int = typer.Option(0, "--after", min=0, help="Start after this task id (the next-page cursor)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line instead of a table."),
) -> None:
    """List tasks in task-id order, a page at a time (never loads the whole project)."""
    who: Any = UNSET if assignee is None else (None if assignee.lower() == "none" else assignee)
    filters = named_filters(status=status or None, assignee=who, data_title=data_title, dataset=dataset)
    where, _ = compile_filters(filters)
    with store_session() as store:
        target = store.get_project(project)
        wf = store.workflow(target.id)
        stage_uuid = None
        if stage is not None:
            found = wf.stage(stage)
            if found.type.is_router:
                raise NotFoundError(f"'{stage}' is a router and holds no tasks; pass a stage 'annoflow stages' lists")
            stage_uuid = found.uuid
        # One more than asked tells whether there is a next page.
        rows = list(_pages(store, target.id, stage_uuid, where, after, limit + 1))
    shown, more = rows[:limit], len(rows) > limit
    hint = f"more tasks match: add --after {shown[-1].id} for the next page, or raise --limit" if more else ""
    if as_json:
        for t in shown:
            typer.echo(json.dumps(task_dict(t, wf)))
        if hint:
            err_console.print(hint, markup=False, highlight=False)
        return
    where_txt = f"stage '{wf.stage(stage).title}'" if stage else "all stages"
    console.print(tasks_table(f"Tasks of {target.name}, {where_txt}", wf, shown))
    console.print(hint or f"{len(shown)} task(s)", markup=False, highlight=False)


def _subtask_for(store: Store, task: TaskRecord, action: Action, who: str | None) -> str:
    """Pick the consensus subtask an action on the parent task means."""
    subs = store.subtasks(task.uuid)
    listing = ", ".join(f"{s.label_branch} {s.uuid} ({s.status.value}, {s.assignee or 'free'})" for s in subs)
    if action is Action.ASSIGN:
        mine = next((s for s in subs if s.assignee == who), None)
        free = next((s for s in subs if s.assignee is None and s.status in _FREE), None)
        if mine is None and free is not None:
            return free.uuid
        reason = f"{who} already holds one" if mine else "none is free"
    else:
        held = next((s for s in subs if s.assignee == who and s.status is TaskStatus.ASSIGNED), None)
        if held is not None:
            return held.uuid
        reason = f"{who or 'nobody (pass --by EMAIL)'} holds none"
    raise InvalidInputError(
        f"consensus task {task.uuid}: cannot pick a subtask to {action.value}: {reason}; "
        f"pass --subtask UUID, one of: {listing}"
    )


def _act(action: Action, task_uuid: str, by: str | None, **kw: Any) -> None:
    by = by or settings().user
    with store_session() as store:
        task = store.get_task(task_uuid)
        wf = store.workflow(task.project_id)
        if wf.stages[task.stage_uuid].type is StageType.CONSENSUS_ANNOTATION and kw.get("subtask") is None:
            kw["subtask"] = _subtask_for(store, task, action, kw.get("assignee") or by)
        done = store.act(ActionRequest(task_uuid, action, by=by, expected_version=task.version, **kw))
        subs = store.subtasks(done.uuid) if wf.stages[done.stage_uuid].type is StageType.CONSENSUS_ANNOTATION else []
    console.print(task_line(done, wf, subs), markup=False, highlight=False)


_TASK = typer.Argument(..., help="The task's UUID ('annoflow tasks list' shows them).")
_BY = typer.Option(None, "--by", help="Acting user [default: ANNOFLOW_USER, else the assignee].")
_SUBTASK = typer.Option(None, "--subtask", help="Consensus annotation: the subtask [default: picked for you].")


@task_app.command("assign")
def task_assign(
    task: str = _TASK,
    user: str | None = typer.Option(None, "--user", help="Who gets the task [default: --by]."),
    by: str | None = _BY,
    subtask: str | None = _SUBTASK,
) -> None:
    """Give a task (or a consensus subtask) to a user."""
    who = user or by or settings().user
    if not who:
        raise InvalidInputError("assign needs the user who gets the task: pass --user EMAIL")
    _act(Action.ASSIGN, task, by, assignee=who, subtask=subtask)


@task_app.command("release")
def task_release(task: str = _TASK, by: str | None = _BY, subtask: str | None = _SUBTASK) -> None:
    """Give a held task back, unassigned."""
    _act(Action.RELEASE, task, by, subtask=subtask)


@task_app.command("submit")
def task_submit(task: str = _TASK, by: str | None = _BY, subtask: str | None = _SUBTASK) -> None:
    """Submit an annotation task along its pathway."""
    _act(Action.SUBMIT, task, by, subtask=subtask)


@task_app.command("skip")
def task_skip(task: str = _TASK, by: str | None = _BY) -> None:
    """Pass on an annotation task."""
    _act(Action.SKIP, task, by)


@task_app.command("approve")
def task_approve(
    task: str = _TASK,
    by: str | None = _BY,
    branch: str | None = typer.Option(None, "--branch", help="Consensus review: the winning branch or annotator."),
) -> None:
    """Approve a review task (consensus review: choose the winning --branch)."""
    _act(Action.APPROVE, task, by, branch=branch)


@task_app.command("reject")
def task_reject(task: str = _TASK, by: str | None = _BY) -> None:
    """Reject a review task; it goes back along the reject pathway, REOPENED."""
    _act(Action.REJECT, task, by)


@task_app.command("reopen")
def task_reopen(task: str = _TASK, by: str | None = _BY) -> None:
    """Send a finished task back to the first stage (team managers and admins)."""
    _act(Action.REOPEN, task, by)


@task_app.command("proceed")
def task_proceed(
    task: str = _TASK,
    pathway: str = typer.Option(..., "--pathway", help="Pathway name or UUID ('annoflow project show' lists them)."),
    by: str | None = _BY,
) -> None:
    """Move a task in an agent stage along one of its pathways."""
    _act(Action.PROCEED, task, by, pathway=pathway)


@tasks_app.command("failed")
def tasks_failed(project: ProjectOpt) -> None:
    """List tasks whose retries are used up, with their last error."""
    store = open_store()
    record = store.get_project(project)
    wf = store.workflow(record.id)
    failed = list_failed(store, record.id)
    table = Table(title=f"failed tasks of {record.name} ({len(failed)})")
    for col in ("task", "data", "stage", "attempts", "error"):
        table.add_column(col)
    for t in failed:
        table.add_row(t.uuid, t.data_title, wf.stages[t.stage_uuid].title, str(t.attempts), t.last_error or "")
    console.print(table)
    if failed:
        console.print(f"send them again with 'annoflow tasks retry --project {record.name}'")


@tasks_app.command("retry")
def tasks_retry(
    project: ProjectOpt,
    task: Annotated[list[str] | None, typer.Argument(help="Task UUIDs (default: every failed task)")] = None,
) -> None:
    """Make failed tasks claimable again; the next produce/run sends them to the workers."""
    store = open_store()
    record = store.get_project(project)
    n = release_failed(store, record.id, task or None)
    console.print(f"{n} failed task(s) of {record.name} will be sent again by the next 'annoflow produce' or 'run'")
