"""Commands for lineage and versions: ``lineage``, ``version create|list|restore|diff``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli.app import ProjectOpt, app, console, group, open_store, settings
from common.errors import InvalidInputError
from common.lineage import FORMATS, Scope, lineage_graph, render
from common.versions import create_version, diff_versions, list_versions, restore_version

__all__ = ["version_app"]


version_app = group("version", "Save, list, compare and restore versions of a project's labels.")


@app.command("lineage")
def lineage_cmd(
    project: Annotated[str | None, typer.Option("--project", help="Project name or id.")] = None,
    task: Annotated[str | None, typer.Option("--task", help="Task UUID (task scope).")] = None,
    scope: Annotated[
        str | None, typer.Option("--scope", help="workspace, project or task [default: task with --task, else project]")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help=f"One of {', '.join(FORMATS)}.")] = "mermaid",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to FILE instead of stdout.")] = None,
    collapse: Annotated[
        int, typer.Option("--collapse-tasks", min=0, help="Fold more tasks per run than N; 0: never.")
    ] = 25,
) -> None:
    """Draw what runs read and wrote: projects, versions, datasets, files, tasks, jobs, apps."""
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown --format {fmt!r}; use one of {', '.join(FORMATS)}")
    chosen = scope or (Scope.TASK.value if task else Scope.PROJECT.value)
    graph = lineage_graph(open_store(), chosen, project=project, task=task, collapse_tasks=collapse)
    title = f"annoflow lineage: {chosen} {task or project or ''}".strip()
    text = render(graph, fmt, title)
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    console.print(f"wrote {len(graph.nodes)} nodes, {len(graph.edges)} connections to {output}")


@version_app.command("create")
def version_create(
    project: ProjectOpt,
    title: Annotated[str, typer.Option("--title", help="Short name of the version.")] = "",
    description: Annotated[str, typer.Option("--description", help="What the version is for.")] = "",
) -> None:
    """Save the project's workflow, task states and labels as its next version (or find the equal one)."""
    version, created = create_version(open_store(), project, title, description, by=settings().user)
    if created:
        console.print(
            f"created version {version.number} of {project!r}: {version.task_count} tasks, "
            f"{version.label_row_count} label rows (content {version.content_hash[:12]})"
        )
    else:
        console.print(
            f"nothing changed since version {version.number} of {project!r}; returning it "
            f"(content {version.content_hash[:12]})"
        )


@version_app.command("list")
def version_list(project: ProjectOpt) -> None:
    """List the versions of a project, oldest first."""
    table = Table(title=f"Versions of {project}")
    for col in ("version", "title", "tasks", "label rows", "content", "created", "by", "description"):
        table.add_column(col, overflow="fold")
    for v in list_versions(open_store(), project):
        table.add_row(
            str(v.number),
            v.title,
            str(v.task_count),
            str(v.label_row_count),
            v.content_hash[:12],
            v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            v.created_by or "",
            v.description,
        )
    console.print(table)


@version_app.command("restore")
def version_restore(
    project: ProjectOpt,
    version: Annotated[int, typer.Option("--version", min=1, help="Version number to restore.")],
    as_name: Annotated[str | None, typer.Option("--as", help="Name of the new project [default: NAME-vN].")] = None,
    in_place: Annotated[bool, typer.Option("--in-place", help="Set the project itself back instead.")] = False,
) -> None:
    """Restore a version as a new project (default) or in place; recorded in history and lineage."""
    r = restore_version(open_store(), project, version, as_name=as_name, in_place=in_place, by=settings().user)
    where = "in place" if r.in_place else f"as new project {r.project_name!r}"
    console.print(
        f"restored version {r.version} of {project!r} {where}: {r.tasks_restored} tasks, "
        f"{r.labels_restored} label rows set, {r.labels_removed} removed (run {r.run_id})"
    )
    if r.tasks_kept:
        console.print(f"kept {r.tasks_kept} tasks imported after version {r.version} as they are")
    if r.missing_data_units:
        console.print(f"[yellow]skipped {r.missing_data_units} tasks whose data unit no longer exists[/yellow]")


@version_app.command("diff")
def version_diff(
    project: ProjectOpt,
    a: Annotated[int, typer.Argument(help="Version A (before).")],
    b: Annotated[int, typer.Argument(help="Version B (after).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Objects added, changed and removed from A to B, and tasks whose stage differs."""
    d = diff_versions(open_store(), project, a, b)
    if as_json:
        typer.echo(d.model_dump_json(indent=2))
        return
    console.print(
        f"{project} v{a} -> v{b}: objects +{d.objects_added} ~{d.objects_changed} -{d.objects_removed} "
        f"in {d.label_rows_changed} label rows; tasks +{d.tasks_added} -{d.tasks_removed}, "
        f"{d.tasks_status_changed} changed status"
    )
    if d.stage_changes:
        table = Table(title=f"{d.stage_changes_total} tasks in another stage")
        for col in ("data title", f"stage in v{a}", f"stage in v{b}"):
            table.add_column(col)
        for c in d.stage_changes:
            table.add_row(c.data_title, c.stage_a, c.stage_b)
        console.print(table)
