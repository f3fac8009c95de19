"""Rich renderings of store records for the CLI: tables and trees, no logic."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from rich.table import Table
from rich.tree import Tree

from common.enums import TaskStatus
from common.store import ProjectRecord, SubtaskRecord, TaskRecord, UserRecord
from common.workflow import Workflow

__all__ = [
    "counts_table",
    "projects_table",
    "task_dict",
    "task_line",
    "tasks_table",
    "users_table",
    "workflow_tree",
]


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S")


def projects_table(projects: Iterable[ProjectRecord], workflows: Mapping[str, str]) -> Table:
    table = Table(title="Projects")
    for col in ("name", "uuid", "workflow", "version", "created", "description"):
        table.add_column(col, overflow="fold")
    for p in projects:
        table.add_row(
            p.name, p.id, workflows.get(p.id, ""), str(p.workflow_version), _when(p.created_at), p.description
        )
    return table


def workflow_tree(project: ProjectRecord, wf: Workflow) -> Tree:
    """Stages (routers included, marked as such) with their pathways and UUIDs."""
    tree = Tree(f"[bold]{project.name}[/bold] ({project.id}) workflow '{wf.name}' v{project.workflow_version}")
    for stage in wf.stages.values():
        extra = []
        if stage.uuid == wf.start_uuid:
            extra.append("start")
        if stage.type.is_router:
            extra.append("router, not listed to users")
        if stage.annotators:
            extra.append(f"{stage.annotators} annotators")
        if stage.certifications:
            extra.append("needs " + ", ".join(stage.certifications))
        note = f" [dim]({'; '.join(extra)})[/dim]" if extra else ""
        branch = tree.add(f"[bold]{stage.title}[/bold] [cyan]{stage.type.value}[/cyan] {stage.uuid}{note}")
        for p in stage.pathways:
            how = ""
            if p.percentage is not None:
                how = f" {p.percentage:g}%"
            elif p.users:
                how = " users: " + ", ".join(p.users)
            failure = " [dim](on failure)[/dim]" if p.uuid == stage.on_failure else ""
            branch.add(f"{p.name} -> {wf.stages[p.to].title}{how} [dim]{p.uuid}[/dim]{failure}")
    return tree


def users_table(project: ProjectRecord, users: Iterable[UserRecord]) -> Table:
    table = Table(title=f"Users of {project.name}")
    for col in ("email", "name", "role", "certifications"):
        table.add_column(col)
    for u in users:
        table.add_row(u.email, u.name, u.role.value if u.role else "", ", ".join(u.certifications))
    return table


def counts_table(project: ProjectRecord, wf: Workflow, counts: Mapping[str, Mapping[str, int]]) -> Table:
    """One row per user-visible stage, one column per status, plus the total."""
    statuses = [s.value for s in TaskStatus]
    table = Table(title=f"Tasks of {project.name} by stage and status")
    table.add_column("stage")
    table.add_column("type")
    for s in statuses:
        table.add_column(s, justify="right")
    table.add_column("total", justify="right", style="bold")
    totals = dict.fromkeys(statuses, 0)
    for stage in wf.user_stages():
        row = counts.get(stage.uuid, {})
        for s in statuses:
            totals[s] += row.get(s, 0)
        table.add_row(
            stage.title,
            stage.type.value,
            *(str(row.get(s, 0)) if row.get(s) else "-" for s in statuses),
            str(sum(row.values())),
        )
    table.add_section()
    table.add_row("all", "", *(str(totals[s]) for s in statuses), str(sum(totals.values())))
    return table


def tasks_table(title: str, wf: Workflow, tasks: Iterable[TaskRecord]) -> Table:
    table = Table(title=title)
    for col in ("id", "uuid", "data title", "stage", "status", "assignee", "updated"):
        table.add_column(col, overflow="fold")
    for t in tasks:
        table.add_row(
            str(t.id),
            t.uuid,
            t.data_title,
            wf.stages[t.stage_uuid].title,
            t.status.value,
            t.assignee or "-",
            _when(t.updated_at),
        )
    return table


def task_dict(task: TaskRecord, wf: Workflow) -> dict[str, Any]:
    """A task as JSON output: the record plus its stage title."""
    return {**task.model_dump(mode="json"), "stage_title": wf.stages[task.stage_uuid].title}


def task_line(task: TaskRecord, wf: Workflow, subtasks: Iterable[SubtaskRecord] = ()) -> str:
    """One line saying where a task is after an action."""
    who = f", assigned to {task.assignee}" if task.assignee else ""
    line = f"task {task.uuid} ({task.data_title}): {wf.stages[task.stage_uuid].title} / {task.status.value}{who}"
    subs = [f"{s.label_branch}={s.status.value}{'@' + s.assignee if s.assignee else ''}" for s in subtasks]
    return line + (f" (subtasks: {', '.join(subs)})" if subs else "")
