"""Commands for projects and their data: ``annoflow project ...`` and ``annoflow data import``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from cli.app import app, console, store_session
from cli.render import projects_table, workflow_tree
from common.workflow import load_workflow
from producer.importer import import_data, open_source

__all__ = ["data_app", "project_app"]

project_app = typer.Typer(help="Create, list and show projects.", no_args_is_help=True)
data_app = typer.Typer(help="Import data units into a project.", no_args_is_help=True)
app.add_typer(project_app, name="project")
app.add_typer(data_app, name="data")

# Imports smaller than this finish before a progress bar is worth drawing.
_PROGRESS_FROM = 2000


@project_app.command("create")
def project_create(
    file: Path = typer.Option(..., "--file", "-f", help="Workflow definition (YAML or JSON)."),
    name: str = typer.Option(..., "--name", help="Project name, unique in the store."),
    description: str = typer.Option("", "--description", help="Free text shown by 'project list'."),
) -> None:
    """Create a project running the workflow in FILE."""
    workflow = load_workflow(file)
    with store_session() as store:
        project = store.create_project(name, workflow, description)
        console.print(workflow_tree(project, workflow))
    console.print(f"created project {project.name} ({project.id})", markup=False, highlight=False)


@project_app.command("list")
def project_list() -> None:
    """List the projects in the store."""
    with store_session() as store:
        projects = store.list_projects()
        workflows = {p.id: store.workflow(p.id, p.workflow_version).name for p in projects}
    if not projects:
        console.print("no projects yet; create one with 'annoflow project create -f workflow.yaml --name NAME'")
        return
    console.print(projects_table(projects, workflows))


@project_app.command("show")
def project_show(name: str = typer.Argument(..., help="Project name or UUID.")) -> None:
    """Show a project's stages and pathways with their UUIDs."""
    with store_session() as store:
        project = store.get_project(name)
        workflow = store.workflow(project.id)
    console.print(workflow_tree(project, workflow))


@data_app.command("import")
def data_import(
    source: Path = typer.Argument(..., help="A folder of images or a JSONL manifest (one data unit per line)."),
    project: str = typer.Option(..., "--project", help="Project name or UUID."),
    dataset: str | None = typer.Option(None, "--dataset", help="Dataset name [default: folder or file name]."),
) -> None:
    """Import data units, one task each in the workflow's start stage.

    Everything is checked before anything is written: a bad manifest line
    (reported with its line number) or data already imported imports nothing.
    """
    src = open_source(source)
    with store_session() as store:
        target = store.get_project(project)
        with _progress() as (progress, bars):

            def report(phase: str, done: int, total: int | None) -> None:
                if done < _PROGRESS_FROM and phase not in bars:
                    return
                if phase not in bars:
                    bars[phase] = progress.add_task(phase, total=total)
                progress.update(bars[phase], completed=done, total=total)

            done = import_data(store, target.id, src, dataset, report)
        start = store.workflow(target.id).start.title
    console.print(
        f"imported {done.imported} data unit(s) from {src.path} into project {target.name}, "
        f"dataset {done.dataset}; each has a task in '{start}'",
        markup=False,
        highlight=False,
    )


@contextmanager
def _progress() -> Iterator[tuple[Progress, dict[str, TaskID]]]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    with progress:
        yield progress, {}
