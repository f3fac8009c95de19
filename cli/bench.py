"""``annoflow bench ...``: thin commands over the measurements in :mod:`bench` (store, pipeline, latency, ToTask...)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cli.app import console, group, settings
from common.errors import InvalidInputError
from common.store.importing import IMPORT_BATCH

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
    from bench.store import bench_store

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


@bench_app.command("pipeline")
def bench_pipeline(
    tasks: Annotated[int, typer.Option("--tasks", min=1, help="Tasks to push through")] = 20000,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Tasks per message")] = 100,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker pool processes")] = 2,
    max_in_flight: Annotated[int | None, typer.Option("--max-in-flight", min=1)] = None,
    store_url: Annotated[
        str | None,
        typer.Option("--store", "--store-url", help="Store URL, e.g. postgresql://... [default: a fresh SQLite file]"),
    ] = None,
    baseline_tasks: Annotated[
        int | None, typer.Option("--baseline-tasks", min=1, help="Bare Celery messages [default: tasks, max 10,000]")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON")] = False,
) -> None:
    """Throughput of the pipeline (no-op handler) against bare Celery (no-op task) on the same Redis broker."""
    from bench.pipeline import run_bench

    url = settings().broker_url or "redis://127.0.0.1:6379/15"
    if not url.startswith("redis"):
        raise InvalidInputError(
            f"bench pipeline needs a Redis broker, not {url!r}; set ANNOFLOW_BROKER_URL=redis://..."
        )
    figures = run_bench(
        url,
        tasks,
        batch_size,
        workers=workers,
        max_in_flight=max_in_flight,
        store_url=store_url,
        baseline_tasks=baseline_tasks,
    )
    _print(figures, as_json)


@bench_app.command("versions")
def bench_versions_cmd(
    tasks: Annotated[int, typer.Option("--tasks", min=1, help="Labelled tasks in the project.")] = 100_000,
    versions: Annotated[int, typer.Option("--versions", min=1, help="Versions to save.")] = 10,
    change: Annotated[
        float, typer.Option("--change", min=0.0, max=1.0, help="Share of tasks edited per version.")
    ] = 0.01,
    db: Annotated[Path | None, typer.Option("--db", help="Fresh SQLite file [default: a temporary one].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON only.")] = False,
) -> None:
    """Size of N versions against one full copy of the project (and how long saving one takes)."""
    from bench.versions import bench_versions

    figures = bench_versions(tasks, versions, change, db)
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
        return
    console.print_json(data=figures)


@bench_app.command("totask-file")
def bench_totask_file(
    files: Annotated[int, typer.Option("--files", min=1, help="Annotation files to apply")] = 10000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker pool processes")] = 2,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Tasks per message")] = 200,
    store_url: Annotated[str | None, typer.Option("--store-url", help="Default: a fresh SQLite file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON")] = False,
) -> None:
    """Files applied per second, end to end: local HTTP server, Redis, worker processes, store."""
    from bench.totask_file import bench_totask_file as run_bench

    url = settings().broker_url or "redis://127.0.0.1:6379/14"
    if not url.startswith("redis"):
        raise InvalidInputError(f"bench totask-file needs a Redis broker, not {url!r}; set ANNOFLOW_BROKER_URL")
    _print(run_bench(url, files, workers=workers, batch_size=batch_size, store_url=store_url), as_json)


@bench_app.command("totask-inference")
def bench_totask_inference(
    images: Annotated[int, typer.Option("--images", min=1, help="Images to detect faces in")] = 64,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per predict() call")] = 16,
    model: Annotated[
        str, typer.Option("--model", help="haar: the built-in face detector; onnx: a small ONNX detector built now")
    ] = "haar",
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON")] = False,
) -> None:
    """A detector batched against one image at a time (CPU)."""
    from bench.totask_inference import bench_inference, bench_onnx_inference

    if model not in ("haar", "onnx"):
        raise typer.BadParameter(f"unknown model {model!r}; use haar or onnx", param_hint="--model")
    run = bench_onnx_inference if model == "onnx" else bench_inference
    _print(run(images=images, batch_size=batch_size), as_json)


@bench_app.command("export")
def bench_export_cmd(
    tasks: int = typer.Option(1_000_000, "--tasks", min=1, help="Labelled tasks to build and export."),
    fmt: str = typer.Option("coco", "--format", "-f", help="coco, yolo, voc, labelstudio or jsonl."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON only."),
) -> None:
    """Build a store of N labelled tasks, export it, and print tasks/s, objects/s and RSS."""
    from bench.export import bench_export

    progress = Progress(
        TextColumn("exporting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=True, disable=as_json or not console.is_terminal,
    )  # fmt: skip
    with progress:
        bar = progress.add_task("export", total=tasks)
        figures = bench_export(tasks, fmt, on_progress=lambda done, _: progress.update(bar, completed=done))
    _print(figures, as_json)


def _print(figures: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            console.print(f"{key:>28}: {value}")


@bench_app.command("latency")
def bench_latency_cmd(
    store_url: Annotated[
        str | None,
        typer.Option(
            "--store", "--store-url", help="Store of the Redis setup, e.g. postgresql://... [default: SQLite]"
        ),
    ] = None,
    setups: Annotated[str, typer.Option("--setups", help="Comma-separated: redis, embedded")] = "redis,embedded",
    samples: Annotated[int, typer.Option("--samples", min=2, help="Submits measured per setup")] = 30,
    pause: Annotated[float, typer.Option("--pause", min=0.0, help="Idle seconds before each submit")] = 1.0,
) -> None:
    """Action -> handler start and action -> next stage, idle, as p50/p95/p99 JSON (one object per setup)."""
    from bench.latency import SETUPS, bench_latency

    broker = settings().broker_url or "redis://127.0.0.1:6379/13"
    chosen = [s.strip() for s in setups.split(",") if s.strip()]
    if unknown := [s for s in chosen if s not in SETUPS]:
        raise InvalidInputError(f"--setups: unknown {', '.join(unknown)}; use any of {', '.join(SETUPS)}")
    for setup in chosen:
        figures = bench_latency(setup, samples, store_url=store_url, broker_url=broker, pause=pause)
        print(json.dumps(figures), flush=True)
