"""What every command group of the ``annoflow`` command shares: the app, the consoles, the settings, the store.

Each group lives in its own ``cli/<group>.py`` module, imports this one and no other
group, and is registered by :mod:`cli.main`. :class:`cli.errors.AnnoflowGroup` turns a
user error into one line saying what is wrong and how to fix it, with exit code 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Annotated

import typer
from rich.console import Console

from cli.errors import AnnoflowGroup
from common.settings import Settings
from common.store import Store

__all__ = ["ProjectOpt", "app", "console", "err_console", "group", "open_store", "settings", "store_session"]

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


@contextmanager
def store_session() -> Iterator[Store]:
    """The configured store, closed when the command is done."""
    store = open_store()
    try:
        yield store
    finally:
        store.close()
