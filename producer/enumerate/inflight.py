"""The in-flight ledger: which published batches are not applied yet, per stage.

The producer adds a batch before it publishes it; the result applier removes it
after the batch's transaction commits. Each entry expires at the batch's lease
deadline, so a batch lost with a killed worker stops counting when its tasks
become claimable again. The producer and the applier may be different
processes, so the ledger lives beside the broker:

* Redis broker: one sorted set per stage (member batch id, score deadline).
* Embedded broker: one empty file per batch under ``<home>/inflight/``, its
  modification time set to the deadline.
* Any other broker (RabbitMQ): one row per batch in the store's
  ``inflight_batches`` table, so a producer and an applier on different hosts
  share it through the store they both use.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import ColumnElement, delete, func, insert, select

from common.store.schema import inflight_batches

if TYPE_CHECKING:
    from redis.client import Pipeline

    from common.store import Store

__all__ = ["FileLedger", "Ledger", "RedisLedger", "StoreLedger", "make_ledger"]

KEY_PREFIX = "annoflow:inflight"


class Ledger(Protocol):
    """Published-but-not-applied batches, by project and stage."""

    def add(self, project_id: str, stage_uuid: str, batch_id: str, deadline: float) -> None: ...

    def add_many(self, project_id: str, stage_uuid: str, batch_ids: list[str], deadline: float) -> None: ...

    def remove(self, project_id: str, stage_uuid: str, batch_id: str) -> None: ...

    def remove_many(self, batches: list[tuple[str, str, str]]) -> None:
        """Remove ``(project_id, stage_uuid, batch_id)`` entries."""
        ...

    def count(self, project_id: str, stage_uuid: str) -> int: ...


class RedisLedger:
    """The ledger in Redis sorted sets (``annoflow:inflight:<project>:<stage>``)."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)

    @staticmethod
    def _key(project_id: str, stage_uuid: str) -> str:
        return f"{KEY_PREFIX}:{project_id}:{stage_uuid}"

    def add(self, project_id: str, stage_uuid: str, batch_id: str, deadline: float) -> None:
        self.client.zadd(self._key(project_id, stage_uuid), {batch_id: deadline})

    def add_many(self, project_id: str, stage_uuid: str, batch_ids: list[str], deadline: float) -> None:
        # One round trip for every batch of a fill.
        if batch_ids:
            self.client.zadd(self._key(project_id, stage_uuid), dict.fromkeys(batch_ids, deadline))

    def remove(self, project_id: str, stage_uuid: str, batch_id: str) -> None:
        self.client.zrem(self._key(project_id, stage_uuid), batch_id)

    def remove_many(self, batches: list[tuple[str, str, str]], pipe: Pipeline | None = None) -> None:
        """Remove the entries in one round trip, or queue the commands into ``pipe`` (the caller's round trip)."""
        if not batches:
            return
        own = pipe is None
        pipe = self.client.pipeline(transaction=False) if pipe is None else pipe
        for project_id, stage_uuid, batch_id in batches:
            pipe.zrem(self._key(project_id, stage_uuid), batch_id)
        if own:
            pipe.execute()

    def count(self, project_id: str, stage_uuid: str) -> int:
        key = self._key(project_id, stage_uuid)
        at = time.time()
        pipe = self.client.pipeline()
        # Expired entries are batches whose tasks are claimable again: drop them.
        pipe.zremrangebyscore(key, "-inf", at)
        pipe.zcard(key)
        return int(pipe.execute()[1])


class FileLedger:
    """The ledger as files under a folder (the embedded broker's)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _dir(self, project_id: str, stage_uuid: str) -> Path:
        return self.folder / project_id / stage_uuid

    def add(self, project_id: str, stage_uuid: str, batch_id: str, deadline: float) -> None:
        folder = self._dir(project_id, stage_uuid)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / batch_id
        path.touch()
        os.utime(path, (deadline, deadline))

    def add_many(self, project_id: str, stage_uuid: str, batch_ids: list[str], deadline: float) -> None:
        for batch_id in batch_ids:
            self.add(project_id, stage_uuid, batch_id, deadline)

    def remove(self, project_id: str, stage_uuid: str, batch_id: str) -> None:
        (self._dir(project_id, stage_uuid) / batch_id).unlink(missing_ok=True)

    def remove_many(self, batches: list[tuple[str, str, str]]) -> None:
        for project_id, stage_uuid, batch_id in batches:
            self.remove(project_id, stage_uuid, batch_id)

    def count(self, project_id: str, stage_uuid: str) -> int:
        folder = self._dir(project_id, stage_uuid)
        at = time.time()
        live = 0
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if entry.stat().st_mtime > at:
                    live += 1
                else:
                    os.unlink(entry.path)
            except FileNotFoundError:
                continue  # the applier removed it meanwhile
        return live


class StoreLedger:
    """The ledger in the store's ``inflight_batches`` table (brokers that cannot hold it).

    Counting reads; expired rows are deleted when the producer next adds batches
    of that stage, so a poll never takes the store's write lock.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, project_id: str, stage_uuid: str, batch_id: str, deadline: float) -> None:
        self.add_many(project_id, stage_uuid, [batch_id], deadline)

    def add_many(self, project_id: str, stage_uuid: str, batch_ids: list[str], deadline: float) -> None:
        if not batch_ids:
            return
        at = datetime.fromtimestamp(deadline, UTC)
        rows = [{"batch_id": b, "project_id": project_id, "stage_uuid": stage_uuid, "deadline": at} for b in batch_ids]
        with self.store.write(wake=False) as conn:  # the producer's own bookkeeping
            conn.execute(delete(inflight_batches).where(*self._stage(project_id, stage_uuid), self._expired()))
            conn.execute(insert(inflight_batches), rows)

    def remove(self, project_id: str, stage_uuid: str, batch_id: str) -> None:
        self.remove_many([(project_id, stage_uuid, batch_id)])

    def remove_many(self, batches: list[tuple[str, str, str]]) -> None:
        if not batches:
            return
        with self.store.write() as conn:
            conn.execute(delete(inflight_batches).where(inflight_batches.c.batch_id.in_([b for *_, b in batches])))

    def count(self, project_id: str, stage_uuid: str) -> int:
        with self.store.read() as conn:
            live = select(func.count()).where(*self._stage(project_id, stage_uuid), ~self._expired())
            return int(conn.execute(live).scalar_one())

    @staticmethod
    def _stage(project_id: str, stage_uuid: str) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
        return inflight_batches.c.project_id == project_id, inflight_batches.c.stage_uuid == stage_uuid

    @staticmethod
    def _expired() -> ColumnElement[bool]:
        return inflight_batches.c.deadline <= datetime.now(UTC)


def make_ledger(broker_url: str, home: Path, store: Store) -> Ledger:
    """The ledger that goes with a broker URL: in Redis, in files under ``home`` (the
    embedded broker), or in the store (any other broker), so that the producer and
    the applier share it wherever each runs."""
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisLedger(broker_url)
    if broker_url.startswith("filesystem://"):
        return FileLedger(Path(home) / "inflight")
    return StoreLedger(store)
