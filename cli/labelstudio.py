"""``annoflow labelstudio``: show an annotation or review stage in Label Studio and pull its annotations back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from cli.app import ProjectOpt, console, group, store_session
from common.labelstudio import LabelStudioClient, LabelStudioSettings

__all__ = ["link", "pull", "push"]

labelstudio = group("labelstudio", "Human stages in Label Studio: link, push tasks, pull annotations.")
StageOpt = typer.Option(..., "--stage", help="Annotation or review stage (title or uuid)")


@contextmanager
def _client() -> Iterator[tuple[LabelStudioClient, LabelStudioSettings]]:
    ls = LabelStudioSettings()
    client = LabelStudioClient(ls.url, ls.token.get_secret_value())
    try:
        yield client, ls
    finally:
        client.close()


@labelstudio.command("link")
def link(
    project: ProjectOpt,
    stage: str = StageOpt,
    ls_project: int | None = typer.Option(None, "--ls-project", help="An existing Label Studio project id"),
    label: list[str] | None = typer.Option(None, "--label", help="A box label of a new project (repeatable)"),
) -> None:
    """Link the stage to a Label Studio project (a new one with annoflow's labelling config unless --ls-project)."""
    from common.labelstudio import link as do_link

    with store_session() as store, _client() as (client, _):
        lnk = do_link(store, client, project, stage, ls_project, label)
    console.print(f"[green]linked[/] stage '{lnk.stage_title}' to Label Studio project {lnk.ls_project} at {lnk.url}")


@labelstudio.command("push")
def push(project: ProjectOpt, stage: str = StageOpt) -> None:
    """Import the stage's waiting tasks into Label Studio, their labels as predictions (again: only new ones)."""
    from common.labelstudio import push as do_push
    from common.labelstudio.connector import get_link

    with store_session() as store, _client() as (client, ls):
        report = do_push(store, client, get_link(store, project, stage), ls.local_files_root)
    console.print(f"[green]pushed[/] {report.pushed} tasks ({report.already} were in Label Studio already)")


@labelstudio.command("pull")
def pull(project: ProjectOpt, stage: str = StageOpt) -> None:
    """Apply each submitted annotation not applied yet: the label row, then submit, approve or reject."""
    from common.labelstudio import pull as do_pull
    from common.labelstudio.connector import get_link

    with store_session() as store, _client() as (client, _):
        report = do_pull(store, client, get_link(store, project, stage))
    for line in report.applied:
        console.print(f"[green]applied[/] {line}")
    for line in report.reported:
        console.print(f"[yellow]not applied[/] {line}")
    console.print(f"{len(report.applied)} applied, {report.unchanged} applied before, {len(report.reported)} reported")
