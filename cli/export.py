"""``annoflow export``: a project's labels (or a saved version's) out to COCO, YOLO, VOC, Label Studio or JSON Lines."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from cli.app import app, console, store_session

__all__ = ["export"]


@app.command("export")
def export(
    project: str = typer.Option(
        ..., "--project", help="Project name or id; NAME@N (or NAME@latest) exports saved version N."
    ),
    fmt: str = typer.Option(..., "--format", "-f", help="coco, yolo, voc, labelstudio or jsonl."),
    output: Path = typer.Option(..., "--output", "-o", help="File (yolo, voc: folder) to write, inside --root."),
    stage: str | None = typer.Option(None, "--stage", help="Only the tasks in this stage (title or uuid)."),
    status: list[str] | None = typer.Option(None, "--status", help="Only tasks with this status (repeatable)."),
    version: int | None = typer.Option(None, "--version", min=1, help="Export saved version N."),
    root: Path = typer.Option(Path("."), "--root", help="The folder the output must stay inside."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON only."),
) -> None:
    """Export labels, streaming a keyset page at a time, with a progress bar."""
    from common.export import export_project

    progress = Progress(
        TextColumn("exporting"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=as_json,
    )
    with store_session() as store, progress:
        bar = progress.add_task("export", total=None)
        summary = export_project(
            store, project, fmt, output, stage=stage, status=status, version=version, root=root, force=force,
            on_progress=lambda done, total: progress.update(bar, completed=done, total=total),
        )  # fmt: skip
    if as_json:
        typer.echo(json.dumps(summary.model_dump(mode="json")))
        return
    what = f"{summary.project}@{summary.version}" if summary.version else summary.project
    console.print(
        f"[green]exported[/] {summary.tasks} tasks, {summary.objects} objects of {what} as {summary.format} "
        f"to {summary.output} in {summary.seconds:.1f}s"
    )
    for reason, count in summary.skipped.items():
        console.print(f"[yellow]skipped[/] {count} objects: {reason}")
