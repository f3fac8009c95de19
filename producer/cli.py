"""The ``annoflow`` command: thin Typer commands over the library, rendered with rich.

Each group of commands lives in its own ``producer/cli_*.py`` module and is
registered here. A user error (any :class:`AnnoflowError` but a transient one)
prints one line saying what is wrong and how to fix it, and exits with code 2.
"""

from __future__ import annotations

import sys
from functools import cache

import typer
from pydantic import ValidationError
from rich.console import Console

from common.errors import AnnoflowError, TransientError
from common.settings import Settings
from common.store import Store
from producer.cli_errors import AnnoflowGroup

__all__ = ["app", "console", "main", "open_store", "settings"]

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


@cache
def settings() -> Settings:
    """The process's settings, read once from ANNOFLOW_* variables."""
    return Settings()


def open_store() -> Store:
    """Open the configured store (embedded SQLite unless ANNOFLOW_STORE_URL says otherwise)."""
    return Store.open(settings().resolved_store_url)


def _register() -> None:
    # Each module adds its commands to ``app`` when imported.
    from producer import cli_bench, cli_ops, cli_project, cli_tasks, cli_users  # noqa: F401
    from producer import cli_pipeline  # noqa: F401  (last: it joins the tasks/bench groups if they exist)
    from producer import cli_lineage  # noqa: F401  (joins the bench group)
    from producer import cli_totask  # noqa: F401  (totask, runs; joins the bench group)
    from producer import cli_status  # noqa: F401


def main() -> None:
    """Entry point of the ``annoflow`` console script."""
    _register()
    try:
        app()
    except TransientError as e:
        err_console.print(f"[red]error:[/red] {e} (this may pass; retry later)", highlight=False)
        sys.exit(1)
    except AnnoflowError as e:
        err_console.print(f"[red]error:[/red] {e}", highlight=False)
        sys.exit(2)
    except ValidationError as e:
        first = e.errors()[0]
        err_console.print(f"[red]error:[/red] invalid setting {first['loc']}: {first['msg']}", highlight=False)
        sys.exit(2)
