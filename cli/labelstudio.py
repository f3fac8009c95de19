"""``annoflow labelstudio``: show an annotation or review stage in Label Studio, pull its annotations back.

``serve`` and ``hook`` apply each annotation the moment it is submitted: Label Studio posts a webhook
to the annoflow server, which reads the annotation back and applies it once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from cli.app import ProjectOpt, console, group, store_session

if TYPE_CHECKING:  # loaded by the commands themselves: `annoflow --help` does not pay for them
    from common.labelstudio import LabelStudioClient, LabelStudioSettings

__all__ = ["hook", "link", "pull", "push", "serve"]

labelstudio = group(
    "labelstudio", "Human stages in Label Studio: link, push tasks, pull annotations, or serve their webhooks."
)
StageOpt = typer.Option(..., "--stage", help="Annotation or review stage (title or uuid)")


@contextmanager
def _client() -> Iterator[tuple[LabelStudioClient, LabelStudioSettings]]:
    from common.labelstudio import LabelStudioClient, LabelStudioSettings

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


@labelstudio.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on"),
    port: int = typer.Option(8765, "--port", help="Port to listen on (0: a free one)"),
) -> None:
    """Serve Label Studio's webhooks at http://HOST:PORT/webhook until Ctrl-C: each annotation applied once."""
    from producer.labelstudio import WEBHOOK_PATH, Delivery, Outcome, WebhookApp, WebhookServer

    def show(delivery: Delivery) -> None:
        if delivery.outcome is Outcome.APPLIED:
            console.print(f"[green]applied[/] {delivery.detail}")
        elif delivery.outcome is Outcome.REPORTED:
            console.print(f"[yellow]not applied[/] {delivery.detail}")

    from common.errors import InvalidInputError

    with store_session() as store, _client() as (client, ls):
        app = WebhookApp(store, client, ls.webhook_secret.get_secret_value(), show)
        try:
            server = WebhookServer((host, port), app)
        except OSError as e:
            raise InvalidInputError(f"cannot listen on {host}:{port} ({e.strerror}); pick another --port") from e
        try:
            console.print(f"serving Label Studio webhooks at http://{host}:{server.port}{WEBHOOK_PATH} (Ctrl-C stops)")
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


@labelstudio.command("hook")
def hook(
    project: ProjectOpt,
    stage: str = StageOpt,
    url: str = typer.Option(..., "--url", help="Where annoflow labelstudio serve listens: http://HOST:PORT/webhook"),
) -> None:
    """Make the stage's Label Studio project post its annotations to URL (again: the same webhook, updated)."""
    from common.errors import InvalidInputError
    from common.labelstudio.connector import get_link

    if not url.startswith(("http://", "https://")):
        raise InvalidInputError(f"--url {url!r} is not an http(s) URL; use http://HOST:PORT/webhook")
    with store_session() as store, _client() as (client, ls):
        lnk = get_link(store, project, stage)
        found, created = client.ensure_webhook(lnk.ls_project, url, ls.webhook_secret.get_secret_value())
    what = "registered" if created else "already registered"
    console.print(
        f"[green]{what}[/] webhook {found.get('id')} of Label Studio project {lnk.ls_project}: "
        f"annotations of stage '{lnk.stage_title}' go to {url}"
    )
