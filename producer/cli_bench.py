"""Benchmarks: ``annoflow bench store`` (bulk import, first page, flat iteration)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from common.store.importing import IMPORT_BATCH
from producer.bench_store import bench_store
from producer.cli import console, group

__all__ = ["bench_app"]

bench_app = group("bench", "Measure annoflow on this machine; prints figures, asserts nothing.")


@bench_app.command("store")
def bench_store_cmd(
    tasks: int = typer.Option(100_000, "--tasks", min=1, help="Data units (one task each) to import."),
    db: Path | None = typer.Option(None, "--db", help="Fresh SQLite file to build [default: a temporary file]."),
    batch_size: int = typer.Option(IMPORT_BATCH, "--batch-size", min=1, help="Units per import transaction."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON only."),
) -> None:
    """Import N data units into a fresh SQLite store, then time a stage's first page and iterate every task."""
    with tempfile.TemporaryDirectory(prefix="annoflow-bench-") as tmp:
        path = db or Path(tmp) / "bench.db"
        progress = Progress(
            TextColumn("importing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=as_json or not console.is_terminal,
        )
        with progress:
            bar = progress.add_task("import", total=tasks)
            figures = bench_store(
                tasks, path, batch_size, on_progress=lambda done: progress.update(bar, completed=done)
            )
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
        return
    console.print_json(data=figures)
