"""The store benchmark behind ``annoflow bench store``: bulk import, first page, flat iteration.

It builds a fresh SQLite store, imports N data units (one task each), then
measures what a user of a big project feels: how fast data goes in, how long
the first page of a stage listing takes, and whether iterating every task
keeps memory flat. Figures only; nothing here asserts a target.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import text

from common.enums import Action
from common.errors import InvalidInputError
from common.store import ActionRequest, DataUnit, Store, compile_filters
from common.store.importing import IMPORT_BATCH
from common.store.schema import tasks
from common.workflow import Workflow, parse_workflow

__all__ = ["BENCH_WORKFLOW", "bench_store", "rss_mb"]

BENCH_WORKFLOW: dict[str, Any] = {
    "name": "Bench",
    "start": "Annotate",
    "stages": [
        {"title": "Annotate", "type": "annotation", "pathways": {"submit": "Review"}},
        {"title": "Review", "type": "review", "pathways": {"approve": "Complete", "reject": "Annotate"}},
        {"title": "Complete", "type": "complete"},
    ],
}
_PAGE = 50


def rss_mb() -> float | None:
    """The process's resident set size in MiB (Linux /proc), or None elsewhere."""
    return _proc_status_mb("VmRSS")


def _proc_status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    # Writing 5 to clear_refs resets VmHWM (Linux >= 4.0), so the peak we read
    # afterwards belongs to the iteration alone, not to the import before it.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _units(n: int) -> Iterator[DataUnit]:
    # Random hashes, as real data hashes are (sequential ones would flatter the indexes);
    # seeded, so every run imports the same units.
    rng = random.Random(n)
    for i in range(n):
        name = f"img_{i:07d}.jpg"
        h = f"{rng.getrandbits(128):032x}"
        yield DataUnit(
            data_hash=f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}",  # a version-4 UUID's layout
            title=name,
            # Validated as DataFile inside the unit's one validation call.
            files={"image": {"url": f"file:///bench/{name}", "original_name": name, "is_primary": True}},
        )


def _timed_ms(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(first call, median of the following calls) in milliseconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    rest = times[1:] or times
    return round(times[0], 3), round(statistics.median(rest), 3)


def _query_plan(store: Store, project_id: str, stage_uuid: str | None, filters: dict[str, Any]) -> str:
    where, _ = compile_filters(filters)
    query = tasks.select().where(tasks.c.project_id == project_id, tasks.c.id > 0, where)
    if stage_uuid is not None:
        query = query.where(tasks.c.stage_uuid == stage_uuid)
    query = query.order_by(tasks.c.id).limit(_PAGE)
    compiled = query.compile(store.engine, compile_kwargs={"literal_binds": True})
    with store.read() as conn:
        rows = conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()
    return "; ".join(str(r[-1]) for r in rows)


def _listing_figures(store: Store, project_id: str, wf: Workflow) -> dict[str, Any]:
    annotate, review = wf.stage("Annotate").uuid, wf.stage("Review").uuid
    cases: dict[str, tuple[str | None, dict[str, Any]]] = {
        "whole_project": (None, {}),
        "big_stage_status_new": (annotate, {"status__in": ["NEW"]}),
        "big_stage_any_status": (annotate, {}),
        "big_stage_new_or_reopened": (annotate, {"status__in": ["NEW", "REOPENED"]}),
        "big_stage_unassigned": (annotate, {"assignee__isnull": True}),
        "small_stage_status_new": (review, {"status__in": ["NEW"]}),
    }
    out: dict[str, Any] = {}
    for name, (stage, filters) in cases.items():

        def page(stage: str | None = stage, filters: dict[str, Any] = filters) -> list[Any]:
            return list(islice(store.iter_tasks(project_id, stage, filters, page_size=_PAGE), _PAGE))

        first, median = _timed_ms(page, repeat=6)
        out[name] = {
            "first_ms": first,
            "median_ms": median,
            "rows": len(page()),
            "plan": _query_plan(store, project_id, stage, filters),
        }
    return out


def _move_some(store: Store, project_id: str, wf: Workflow, count: int) -> None:
    # A few tasks go to Review through the real lifecycle, so a small stage exists to list.
    store.set_role(project_id, "bench@annoflow.local", "admin")
    for task in islice(store.iter_tasks(project_id, wf.stage("Annotate").uuid), count):
        store.assign(task.uuid, "bench@annoflow.local")
        store.act(ActionRequest(task.uuid, Action.SUBMIT, by="bench@annoflow.local"))


def _iteration_figures(store: Store, project_id: str, sample_every: int = 10_000) -> dict[str, Any]:
    peak_reset = _reset_peak_rss()
    before = rss_mb()
    samples: list[float] = []
    count = 0
    t0 = time.perf_counter()
    for _ in store.iter_tasks(project_id):
        count += 1
        if count % sample_every == 0:
            now = rss_mb()
            if now is not None:
                samples.append(now)
    seconds = time.perf_counter() - t0
    after = rss_mb()
    peak = _proc_status_mb("VmHWM") if peak_reset else (max(samples) if samples else after)
    return {
        "tasks": count,
        "seconds": round(seconds, 3),
        "tasks_per_s": round(count / seconds) if seconds else None,
        "rss_before_mb": _round(before),
        "rss_peak_mb": _round(peak),
        "rss_after_mb": _round(after),
        "rss_growth_mb": _round(peak - before) if peak is not None and before is not None else None,
        # Growth between the first and last tenth of the samples: ~0 means flat.
        "rss_drift_mb": _round(samples[-1] - samples[0]) if len(samples) >= 2 else None,
        "samples": len(samples),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def bench_store(
    n: int, db: Path, batch_size: int = IMPORT_BATCH, on_progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Run the benchmark on a fresh SQLite file ``db`` and return its figures.

    Raises:
        InvalidInputError: ``n`` is not positive, or ``db`` exists already.
    """
    if n < 1:
        raise InvalidInputError(f"--tasks must be at least 1, got {n}")
    if db.exists():
        raise InvalidInputError(f"{db} exists; the benchmark needs a fresh file: remove it or pass another --db")
    store = Store.open(f"sqlite:///{db}")
    try:
        wf = parse_workflow(BENCH_WORKFLOW, "bench workflow")
        project = store.create_project("bench", wf)
        dataset = store.dataset(project.id, "bench")

        source_s = 0.0

        def counted() -> Iterator[DataUnit]:
            # Times the making of the units apart, so the store's own rate can be told.
            nonlocal source_s
            units = _units(n)
            for i in range(1, n + 1):
                t = time.perf_counter()
                unit = next(units)
                source_s += time.perf_counter() - t
                if on_progress is not None and i % batch_size == 0:
                    on_progress(i)
                yield unit

        rss_start = rss_mb()
        t0, cpu0 = time.perf_counter(), time.process_time()
        imported = store.add_data_units(project.id, dataset, counted(), batch_size=batch_size)
        import_s, import_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        if on_progress is not None:
            on_progress(n)
        _move_some(store, project.id, wf, min(20, n))
    finally:
        store.close()
    # A fresh process-level store, as a CLI call would see it (caches cold for our code).
    store = Store.open(f"sqlite:///{db}")
    try:
        listing = _listing_figures(store, project.id, wf)
        iteration = _iteration_figures(store, project.id)
    finally:
        store.close()
    return {
        "benchmark": "store",
        "backend": "sqlite",
        "db": str(db),
        "db_size_mb": round(db.stat().st_size / 2**20, 1),
        "tasks": imported,
        "batch_size": batch_size,
        "import": {
            "seconds": round(import_s, 3),
            "units_per_s": round(imported / import_s) if import_s else None,
            # Excluding the time spent building the DataUnit objects fed to the store.
            "source_seconds": round(source_s, 3),
            # CPU seconds of this process: on a busy shared machine wall time overstates the cost.
            "cpu_seconds": round(import_cpu, 3),
            "units_per_cpu_s": round(imported / import_cpu) if import_cpu else None,
            "store_units_per_s": round(imported / (import_s - source_s)) if import_s > source_s else None,
            "rss_before_mb": _round(rss_start),
        },
        "first_page": {"page_size": _PAGE, **listing},
        "iterate_all": iteration,
        "targets": {"import_units_per_s": 20_000, "first_page_ms": 20},
    }
