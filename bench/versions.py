"""Benchmark: how much room N versions take compared with one full copy of a project.

Builds a project of ``tasks`` labelled tasks in a fresh SQLite file, saves
``versions`` versions with a fraction ``change`` of the tasks edited (labels
and workflow position) before each, and measures the bytes the version
tables use against the bytes of one full copy of the project's tasks and
label rows (what copying the project per version would cost each time).
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, insert, select, text, update

from common.errors import InvalidInputError
from common.store import DataFile, DataUnit, Store
from common.store.records import now
from common.store.schema import label_rows, tasks
from common.versions.create import create_version
from common.versions.restore import restore_version
from common.workflow import parse_workflow

__all__ = ["bench_versions", "table_bytes"]

_WORKFLOW = {
    "name": "bench",
    "start": "Annotate",
    "stages": [
        {"title": "Annotate", "type": "annotation", "pathways": {"submit": "Review"}},
        {"title": "Review", "type": "review", "pathways": {"approve": "Complete", "reject": "Annotate"}},
        {"title": "Complete", "type": "complete"},
    ],
}
FULL_COPY_TABLES = ("tasks", "label_rows")
VERSION_TABLES = ("project_versions", "version_tasks", "version_labels", "label_blobs")


def table_bytes(engine: Engine) -> dict[str, int]:
    """Bytes each table uses in a SQLite file, its indexes included (from the dbstat table)."""
    with engine.connect() as conn:
        owner = {str(r[0]): str(r[1]) for r in conn.execute(text("SELECT name, tbl_name FROM sqlite_master"))}
        sizes: dict[str, int] = {}
        for name, size in conn.execute(text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")):
            table = owner.get(name, name)
            sizes[table] = sizes.get(table, 0) + int(size)
    return sizes


def _objects(rng: random.Random, n: int = 2) -> list[dict[str, Any]]:
    return [
        {
            "objectHash": uuid.UUID(int=rng.getrandbits(128)).hex[:8],
            "name": rng.choice(["apple", "pear", "leaf"]),
            "shape": "bounding_box",
            "boundingBox": {k: round(rng.random(), 4) for k in ("x", "y", "w", "h")},
            "confidence": round(rng.random(), 3),
        }
        for _ in range(n)
    ]


def _units(n: int) -> Iterator[DataUnit]:
    for i in range(n):
        title = f"img_{i:07d}.jpg"
        yield DataUnit(
            data_hash=str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench/{title}")),
            title=title,
            files={"image": DataFile(url=f"file:///data/{title}", original_name=title, is_primary=True)},
        )


def bench_versions(
    tasks_n: int = 100_000, versions: int = 10, change: float = 0.01, db: Path | None = None, seed: int = 7
) -> dict[str, Any]:
    """Run the benchmark; return its figures as JSON-ready data.

    Raises:
        InvalidInputError: a parameter is out of range.
    """
    if tasks_n < 1 or versions < 1 or not 0 <= change <= 1:
        raise InvalidInputError("need --tasks >= 1, --versions >= 1 and 0 <= --change <= 1")
    path = db or Path(tempfile.mkdtemp(prefix="annoflow-bench-")) / "versions.db"
    store = Store.open(f"sqlite:///{path}")
    rng = random.Random(seed)
    t0 = time.perf_counter()
    project = store.create_project(f"bench-{uuid.uuid4().hex[:6]}", parse_workflow(_WORKFLOW, "bench"))
    store.add_data_units(project.id, store.dataset(project.id, "images"), _units(tasks_n))
    wf = store.workflow(project.id)
    review = wf.stage("Review").uuid
    with store.read() as conn:
        hashes = list(conn.execute(select(tasks.c.data_hash).where(tasks.c.project_id == project.id)).scalars())
    at = now()
    for i in range(0, len(hashes), 5000):
        rows = [
            {
                "project_id": project.id,
                "data_hash": h,
                "branch": "main",
                "objects": _objects(rng),
                "version": 1,
                "updated_at": at,
            }
            for h in hashes[i : i + 5000]
        ]
        with store.write() as conn:
            conn.execute(insert(label_rows), rows)
    build_s = time.perf_counter() - t0
    full_copy = sum(table_bytes(store.engine).get(t, 0) for t in FULL_COPY_TABLES)
    per_version: list[float] = []
    changed = max(1, round(tasks_n * change)) if change > 0 else 0
    for v in range(versions):
        if v > 0 and changed:
            _edit(store, project.id, rng.sample(hashes, changed), review, rng)
        t1 = time.perf_counter()
        create_version(store, project.id, title=f"bench {v + 1}")
        per_version.append(round(time.perf_counter() - t1, 3))
    t2 = time.perf_counter()
    _, created = create_version(store, project.id)
    unchanged_s = time.perf_counter() - t2
    sizes = table_bytes(store.engine)
    version_bytes = sum(sizes.get(t, 0) for t in VERSION_TABLES)
    t3 = time.perf_counter()
    restored = restore_version(store, project.id, 1, as_name=f"{project.name}-restored")
    restore_s = time.perf_counter() - t3
    store.close()
    if db is None:  # a throwaway file: do not leave gigabytes behind
        shutil.rmtree(path.parent, ignore_errors=True)
    return {
        "benchmark": "versions",
        "tasks": tasks_n,
        "versions": versions,
        "change": change,
        "tasks_changed_per_version": changed,
        "full_copy_bytes": full_copy,
        "versions_bytes": version_bytes,
        "size_ratio_vs_one_full_copy": round(version_bytes / full_copy, 3),
        "naive_copies_ratio": float(versions),
        "table_bytes": {t: sizes.get(t, 0) for t in (*FULL_COPY_TABLES, *VERSION_TABLES)},
        "build_seconds": round(build_s, 2),
        "create_version_seconds": per_version,
        "unchanged_create_seconds": round(unchanged_s, 3),
        "unchanged_create_made_new_version": created,
        "restore_v1_seconds": round(restore_s, 2),
        "restored_tasks": restored.tasks_restored,
        "db": str(path) if db is not None else None,
    }


def _edit(store: Store, project_id: str, hashes: list[str], stage_uuid: str, rng: random.Random) -> None:
    """Change the labels of these tasks and move them to ``stage_uuid``, in one transaction."""
    at = now()
    with store.write() as conn:
        conn.execute(
            update(label_rows)
            .where(label_rows.c.project_id == project_id, label_rows.c.data_hash == bindparam("h"))
            .values(objects=bindparam("objects"), version=label_rows.c.version + 1, updated_at=at),
            [{"h": h, "objects": _objects(rng, rng.randint(1, 3))} for h in hashes],
        )
        conn.execute(
            update(tasks)
            .where(tasks.c.project_id == project_id, tasks.c.data_hash == bindparam("h"))
            .values(stage_uuid=stage_uuid, status="NEW", version=tasks.c.version + 1, updated_at=at),
            [{"h": h} for h in hashes],
        )
