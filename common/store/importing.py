"""Bulk import of data units: each unit with its task, a batch per transaction.

:meth:`common.store.Store.add_data_units` places the units (stage, status, task uuid)
and calls :func:`insert_units`; on SQLite the rows go in as driver tuples, elsewhere
through SQLAlchemy.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Connection, insert

from common.store.bulk import driver_value
from common.store.records import DataFile, DataUnit
from common.store.schema import data_units, tasks

__all__ = ["IMPORT_BATCH", "Placed", "collector_per_batch", "insert_units", "ordered_uuids"]

# Units per import transaction. Data hashes are random, so every batch rewrites pages
# all over the data-hash index: fewer, larger batches write it fewer times (at 1M units,
# 100,000 per batch takes about 0.7x the CPU time of 20,000), for ~150 MB held at once.
IMPORT_BATCH = 100_000

# A unit placed for import: the unit, its task's uuid, stage uuid and status.
Placed = tuple[DataUnit, str, str, str]


def insert_units(conn: Connection, project_id: str, dataset_id: str, at: datetime, placed: list[Placed]) -> None:
    """Insert the placed units and one task each (tasks in the given order)."""
    if conn.dialect.name == "sqlite":
        _insert_sqlite(conn, project_id, dataset_id, at, placed)
        return
    conn.execute(insert(data_units), [_unit_row(u, dataset_id, at) for u in _by_hash(u for u, *_ in placed)])
    conn.execute(insert(tasks), [_task_row(p, project_id, dataset_id, at) for p in placed])


@contextmanager
def collector_per_batch() -> Iterator[Callable[[], object]]:
    """Run the cyclic garbage collector once per import batch instead of by allocation count.

    A batch keeps tens of thousands of new objects alive until it is written, so the
    collector, triggered every 700 allocations, would walk them again and again (a
    tenth of the import's time). None of them form cycles; one young collection per
    batch still frees any cycles the caller's own unit source leaves behind.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield lambda: gc.collect(1) if was_enabled else None
    finally:
        if was_enabled:
            gc.enable()


def ordered_uuids(n: int) -> list[str]:
    """``n`` version-7 UUIDs in ascending order (RFC 9562): the millisecond time, 12 random
    bits, then a random 61-bit start counted up. New tasks append to the uuid index instead
    of landing on random pages of it, and one random draw serves the whole batch."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    head = (ms << 80) | (0x7 << 76) | ((rand >> 64) & 0xFFF) << 64 | (0b10 << 62)
    start = rand & ((1 << 61) - 1)  # a 62-bit field from a 61-bit start: never wraps
    out = []
    for i in range(n):
        h = f"{head | (start + i):032x}"  # formatting by hand costs a third of uuid.UUID's
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


_FILES_JSON = TypeAdapter(dict[str, DataFile])
_UNIT_KEYS = ("data_hash", "dataset_id", "title", "meta", "files", "created_at")
_TASK_KEYS = (
    "uuid", "project_id", "data_hash", "data_title", "dataset_id", "stage_uuid", "status",
    "priority", "label_branch", "created_at", "updated_at", "attempts", "version",
)  # fmt: skip
_SQLITE_UNITS = f"INSERT INTO data_units ({', '.join(_UNIT_KEYS)}) VALUES ({', '.join('?' * len(_UNIT_KEYS))})"
_SQLITE_TASKS = f"INSERT INTO tasks ({', '.join(_TASK_KEYS)}) VALUES ({', '.join('?' * len(_TASK_KEYS))})"


def _by_hash(units: Iterable[DataUnit]) -> list[DataUnit]:
    """Data hashes are random: inserted sorted, they touch each index page once per batch."""
    return sorted(units, key=lambda u: u.data_hash)


def _unit_row(u: DataUnit, dataset_id: str, at: datetime) -> dict[str, Any]:
    files = {k: f.model_dump() for k, f in u.files.items()}
    return {"data_hash": u.data_hash, "dataset_id": dataset_id, "title": u.title, "meta": u.meta, "files": files,
            "created_at": at}  # fmt: skip


def _task_row(placed: Placed, project_id: str, dataset_id: str, at: datetime) -> dict[str, Any]:
    u, tid, stage_uuid, status = placed
    return dict(zip(_TASK_KEYS, (tid, project_id, u.data_hash, u.title, dataset_id, stage_uuid, status, 0.5, "main",
                                 at, at, 0, 0), strict=True))  # fmt: skip


def _insert_sqlite(conn: Connection, project_id: str, dataset_id: str, at: datetime, placed: list[Placed]) -> None:
    """Insert the units and their tasks as driver tuples (SQLite's bulk import path).

    Building the tuples here, with the timestamp converted once and the files
    serialised by pydantic in one call each, costs a fraction of SQLAlchemy's
    per-row parameter processing; the stored values are the ones ``insert()`` writes.
    """
    stamp = driver_value(conn, data_units.c.created_at, at)
    # Random-key indexes outgrow SQLite's default 2 MiB page cache within
    # a few hundred thousand units; this connection may cache 128 MiB.
    conn.exec_driver_sql("PRAGMA cache_size=-131072")
    dumps, files_json = json.dumps, _FILES_JSON.dump_json
    conn.exec_driver_sql(
        _SQLITE_UNITS,
        [
            (u.data_hash, dataset_id, u.title, dumps(u.meta) if u.meta else "{}", files_json(u.files).decode(), stamp)
            for u in _by_hash(u for u, *_ in placed)
        ],
    )
    conn.exec_driver_sql(
        _SQLITE_TASKS,
        [
            (tid, project_id, u.data_hash, u.title, dataset_id, stage_uuid, status, 0.5, "main", stamp, stamp, 0, 0)
            for u, tid, stage_uuid, status in placed
        ],
    )
