"""The in-flight ledger: which published batches are not applied yet, per stage.

The producer adds a batch before it publishes it; the result applier removes it
after the batch's transaction commits. Each entry expires at the batch's lease
deadline, so a batch lost with a killed worker stops counting when its tasks
become claimable again. The producer and the applier may be different
processes, so the ledger lives beside the broker:

* Redis broker: one sorted set per stage (member batch id, score deadline).
* Embedded broker: one empty file per batch under ``<home>/inflight/``, its
  modification time set to the deadline.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from redis.client import Pipeline

__all__ = ["FileLedger", "Ledger", "RedisLedger", "make_ledger"]

log = logging.getLogger("annoflow.producer")

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


def make_ledger(broker_url: str, home: Path) -> Ledger:
    """The ledger that goes with a broker URL.

    Any broker but Redis keeps it in files under ``home``: the producer and the
    applier then have to share that folder (one host). Elsewhere the producer
    would count every batch in flight until its lease deadline.
    """
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisLedger(broker_url)
    folder = Path(home) / "inflight"
    if not broker_url.startswith("filesystem://"):
        log.warning(
            "broker %s: the in-flight ledger is kept in %s, so the producer and the result applier must "
            "run on one host with the same ANNOFLOW_HOME; use a redis:// broker to run them apart",
            broker_url.split("@")[-1],
            folder,
        )
    return FileLedger(folder)
