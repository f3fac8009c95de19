"""The ``annoflow`` console script: registers every command group, then runs the app.

The one module that imports the groups; the groups import :mod:`cli.app` and no other
group, and the roles they call (producer, workers, bench) are imported inside the
commands, so ``annoflow --help`` loads no more than it shows.
"""

from __future__ import annotations

from cli.app import app

__all__ = ["main", "register"]


def register() -> None:
    """Add every command group to :data:`cli.app.app` (each module adds its commands when imported)."""
    from cli import (  # noqa: F401
        bench,
        dead_letters,
        export,
        labelstudio,
        lineage,
        ops,
        pipeline,
        project,
        status,
        tasks,
        totask,
        users,
    )


def main() -> None:
    """Entry point of the ``annoflow`` console script (errors are reported by AnnoflowGroup)."""
    register()
    app()
