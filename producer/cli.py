"""The ``annoflow`` command: thin Typer commands over the library, rendered with rich.

Each group of commands lives in its own ``producer/cli_*.py`` module and is
registered here. :class:`producer.cli_errors.AnnoflowGroup` turns a user error
into one line saying what is wrong and how to fix it, with exit code 2.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated

import typer
from rich.console import Console

from common.settings import Settings
from common.store import Store
from producer.cli_errors import AnnoflowGroup

__all__ = ["ProjectOpt", "app", "console", "group", "main", "open_store", "settings"]

# AnnoflowGroup prints usage and user errors as one line with exit code 2.
app = typer.Typer(
    name="annoflow",
    cls=AnnoflowGroup,
    help="Distributed task processing for data-annotation workflows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

# The --project option of the commands that act on one project.
ProjectOpt = Annotated[str, typer.Option("--project", help="Project name or id")]


@cache
def settings() -> Settings:
    """The process's settings, read once from ANNOFLOW_* variables."""
    return Settings()


def group(name: str, help_text: str) -> typer.Typer:
    """The root app's command group ``name``, created by whichever module asks first.

    Several modules add commands to one group (``tasks``, ``bench``), so the
    order in which they are imported does not matter.
    """
    for info in app.registered_groups:
        if info.name == name and info.typer_instance is not None:
            return info.typer_instance
    sub = typer.Typer(help=help_text, no_args_is_help=True)
    app.add_typer(sub, name=name)
    return sub


def open_store() -> Store:
    """Open the configured store (embedded SQLite unless ANNOFLOW_STORE_URL says otherwise)."""
    return Store.open(settings().resolved_store_url)


def _register() -> None:
    # Each module adds its commands to ``app`` when imported.
    from producer import (  # noqa: F401
        cli_bench,
        cli_dead_letters,
        cli_lineage,
        cli_ops,
        cli_pipeline,
        cli_project,
        cli_status,
        cli_tasks,
        cli_totask,
        cli_users,
    )


def main() -> None:
    """Entry point of the ``annoflow`` console script (errors are reported by AnnoflowGroup)."""
    _register()
    app()
