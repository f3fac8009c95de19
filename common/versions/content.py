"""Content addressing for versions: label blobs keyed by hash, and a project-state hash.

The state hash is a sum of per-row digests, so it does not depend on the order
rows are read in (SQLite and PostgreSQL sort text differently) and can be
computed one page at a time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, insert, select

from common.store.schema import label_blobs

__all__ = ["StateHash", "TaskState", "blob_hash", "canonical", "store_blobs"]

_MOD = 1 << 256


def canonical(value: Any) -> str:
    """One JSON text per value: sorted keys, no spaces, so equal content hashes equal."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def blob_hash(objects: list[dict[str, Any]]) -> str:
    """The content key of a label row's objects."""
    return hashlib.sha256(canonical(objects).encode()).hexdigest()


class TaskState(NamedTuple):
    """What a version keeps of one task: where it stood and who held it."""

    data_hash: str
    stage_uuid: str
    status: str
    assignee: str | None
    priority: float
    label_branch: str

    def digest_text(self) -> str:
        who = self.assignee or ""
        return f"t|{self.data_hash}|{self.stage_uuid}|{self.status}|{who}|{self.priority!r}|{self.label_branch}"


class StateHash:
    """An order-independent hash of a project's workflow, task states and label rows."""

    def __init__(self, workflow: dict[str, Any]) -> None:
        self._workflow = hashlib.sha256(canonical(workflow).encode()).hexdigest()
        self._sum = 0

    def _add(self, text: str) -> None:
        self._sum = (self._sum + int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")) % _MOD

    def add_task(self, state: TaskState) -> None:
        self._add(state.digest_text())

    def add_label(self, data_hash: str, branch: str, blob: str) -> None:
        self._add(f"l|{data_hash}|{branch}|{blob}")

    def hexdigest(self) -> str:
        return hashlib.sha256(f"{self._workflow}|{self._sum:064x}".encode()).hexdigest()


def store_blobs(conn: Connection, blobs: dict[str, list[dict[str, Any]]]) -> int:
    """Insert the blobs not stored yet; return how many were new (the rest are shared)."""
    if not blobs:
        return 0
    keys: Sequence[str] = list(blobs)
    have: set[str] = set()
    for i in range(0, len(keys), 500):
        part = keys[i : i + 500]
        have.update(conn.execute(select(label_blobs.c.hash).where(label_blobs.c.hash.in_(part))).scalars())
    new = [{"hash": h, "objects": blobs[h]} for h in keys if h not in have]
    if new:
        conn.execute(insert(label_blobs), new)
    return len(new)
