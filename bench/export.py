"""The export benchmark behind ``annoflow bench export``: N labelled tasks out to a format, in flat memory.

It builds a fresh SQLite store with N data units (the bulk import path) and a label
row of two objects each (a scored, provenance-stamped box and a person's polygon),
written by the driver in one statement per batch, as the ToTask fast path writes
them; then it exports the project and reports tasks/s, objects/s and the RSS at its
peak and at the end of the export. The store is built in a child process, so the
RSS figures are the export's own, not the import batches' left behind in the heap.
Figures only; nothing here asserts a target.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic_core import to_json

from bench.store import BENCH_WORKFLOW, rss_mb
from common.errors import AnnoflowError, InvalidInputError
from common.export import export_project
from common.store import DataFile, DataUnit, Store
from common.store.bulk import driver_value
from common.store.records import now
from common.store.schema import label_rows
from common.workflow import parse_workflow

__all__ = ["bench_export"]

_PROVENANCE = {"run_id": "bench-run", "method": "inference", "pre_processor": "bench-detector"}
_LABEL_BATCH = 50_000


def _units(n: int) -> Iterator[DataUnit]:
    for i in range(n):
        name = f"img_{i:07d}.jpg"
        yield DataUnit(
            data_hash=f"{i:08x}-0000-4000-8000-{i:012x}",
            title=name,
            meta={"width": 640, "height": 480},
            files={"image": DataFile(url=f"https://cdn.example/{name}", original_name=name, is_primary=True)},
        )


def _objects(i: int) -> list[dict[str, Any]]:
    x, y = float(i % 500), float(i % 400)
    return [
        {"id": f"b{i}", "class_id": i % 3, "type": "bbox",
         "coordinates": {"x": x, "y": y, "width": 40.0, "height": 30.0},
         "properties": {"label": ("apple", "pear", "plum")[i % 3]}, "score": 0.8, "provenance": _PROVENANCE},
        {"id": f"p{i}", "class_id": 1, "type": "polygon",
         "coordinates": {"points": [[x, y], [x + 20.0, y], [x + 10.0, y + 15.0]]}, "properties": {"label": "pear"}},
    ]  # fmt: skip


def _write_labels(store: Store, project_id: str, n: int) -> None:
    hashes = (u.data_hash for u in _units(n))
    i = 0
    while batch := list(islice(hashes, _LABEL_BATCH)):
        with store.write() as conn:
            stamp = driver_value(conn, label_rows.c.updated_at, now())
            rows = [(project_id, h, "main", to_json(_objects(i + k)).decode(), stamp) for k, h in enumerate(batch)]
            conn.exec_driver_sql(
                "INSERT INTO label_rows (project_id, data_hash, branch, objects, version, updated_at) "
                "VALUES (?, ?, ?, ?, 1, ?)",
                rows,
            )
        i += len(batch)


def _build(url: str, n: int) -> None:
    """Build the benchmark project in the store at ``url`` (run in a child process)."""
    store = Store.open(url)
    try:
        project = store.create_project("bench-export", parse_workflow(BENCH_WORKFLOW, "bench workflow"))
        store.add_data_units(project.id, store.dataset(project.id, "bench"), _units(n))
        _write_labels(store, project.id, n)
    finally:
        store.close()


def _build_in_child(url: str, n: int) -> None:
    # A fresh interpreter (spawn, not fork) builds the store: its heap goes when it exits.
    child = multiprocessing.get_context("spawn").Process(target=_build, args=(url, n), name="bench-export-build")
    child.start()
    child.join()
    if child.exitcode != 0:
        raise AnnoflowError(
            f"building the benchmark store failed in a child process (exit code {child.exitcode}); see its traceback"
        )


def _peak_reset() -> bool:
    # Writing 5 to clear_refs resets VmHWM (Linux), so the peak read later is the export's own.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _hwm_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def bench_export(
    n: int, fmt: str = "coco", folder: Path | None = None, on_progress: Callable[[int, int | None], None] | None = None
) -> dict[str, Any]:
    """Build a store of ``n`` labelled tasks in ``folder`` (default: a temporary one), export it, return figures.

    Raises:
        InvalidInputError: ``n`` is not positive, or the format is unknown.
    """
    if n < 1:
        raise InvalidInputError(f"--tasks must be at least 1, got {n}")
    with tempfile.TemporaryDirectory(prefix="annoflow-bench-export-") as tmp:
        where = folder or Path(tmp)
        url = f"sqlite:///{where / 'bench-export.db'}"
        t0 = time.perf_counter()
        _build_in_child(url, n)
        build_s = time.perf_counter() - t0
        store = Store.open(url)
        try:
            samples: list[float] = []

            def progress(done: int, total: int | None) -> None:
                if (now_mb := rss_mb()) is not None:
                    samples.append(now_mb)
                if on_progress is not None:
                    on_progress(done, total)

            reset = _peak_reset()
            before = rss_mb()
            summary = export_project(
                store, "bench-export", fmt, f"export.{fmt}", root=where, force=True, on_progress=progress
            )
            end = rss_mb()
            peak = _hwm_mb() if reset else max(samples, default=end or 0.0)
            size = sum(f.stat().st_size for f in (where).glob("export.*") if f.is_file())
        finally:
            store.close()
    seconds = summary.seconds
    tenth = max(1, len(samples) // 10)
    return {
        "format": summary.format,
        "tasks": summary.tasks,
        "objects": summary.objects,
        "skipped": summary.skipped,
        "build_seconds": round(build_s, 1),
        "export_seconds": seconds,
        "tasks_per_s": round(summary.tasks / seconds) if seconds else None,
        "objects_per_s": round(summary.objects / seconds) if seconds else None,
        "output_mb": round(size / 2**20, 1),
        "rss_before_mb": _round(before),
        "rss_peak_mb": _round(peak),
        "rss_end_mb": _round(end),
        # The mean of the last tenth of the per-page samples less the first tenth: ~0 means flat.
        "rss_drift_mb": _round(sum(samples[-tenth:]) / tenth - sum(samples[:tenth]) / tenth) if samples else None,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
