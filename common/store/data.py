"""Datasets and data units: import units into a project, each with its task in the start stage.

The import streams units in batches, one transaction each; the rows themselves
are written by :mod:`common.store.importing`. A unit's task lands where the
workflow's start leads (through routers), with its consensus subtasks where that
stage has them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from common.enums import StageType, TaskStatus
from common.errors import InvalidInputError
from common.store.importing import IMPORT_BATCH, Placed, collector_per_batch, insert_units, ordered_uuids
from common.store.moves import enter_stage_rows
from common.store.projects import ProjectsMixin
from common.store.records import DataUnit, now
from common.store.schema import data_units, datasets, subtasks
from common.workflow_graph import Workflow

__all__ = ["DataMixin"]


class DataMixin(ProjectsMixin):
    """The data part of :class:`common.store.Store`."""

    def dataset(self, project_id: str, name: str) -> str:
        """Return the id of the project's dataset ``name``, creating it if needed."""
        with self.write() as conn:
            found = conn.execute(
                select(datasets.c.id).where(datasets.c.project_id == project_id, datasets.c.name == name)
            ).scalar()
            if found:
                return str(found)
            did = str(uuid.uuid4())
            conn.execute(insert(datasets).values(id=did, project_id=project_id, name=name, created_at=now()))
            return did

    def add_data_units(
        self, project_id: str, dataset_id: str, units: Iterable[DataUnit], batch_size: int = IMPORT_BATCH
    ) -> int:
        """Import data units and create one task each in the workflow's start stage.

        Streams ``units`` in batches (one transaction each), so a million units
        never sit in memory at once. Returns the number imported.

        Raises:
            InvalidInputError: a data hash is already imported in this project.
        """
        wf = self.workflow(project_id)
        count = 0
        batch: list[DataUnit] = []
        with collector_per_batch() as batch_done:
            for unit in units:
                batch.append(unit)
                if len(batch) >= batch_size:
                    count += self._import_batch(wf, project_id, dataset_id, batch)
                    batch = []
                    batch_done()
            if batch:
                count += self._import_batch(wf, project_id, dataset_id, batch)
        return count

    def _import_batch(self, wf: Workflow, project_id: str, dataset_id: str, batch: list[DataUnit]) -> int:
        at = now()
        # Without a router at the start every unit lands in the same stage: resolve it once.
        fixed = None if wf.start.type.is_router else wf.resolve(wf.start_uuid, "", None)[0]
        consensus = fixed is None or fixed.type is StageType.CONSENSUS_ANNOTATION
        placed: list[Placed] = []
        sub_rows: list[dict[str, Any]] = []
        # Tasks keep the input's order (listings show them so) with ascending uuids.
        for u, tid in zip(batch, ordered_uuids(len(batch)), strict=True):
            stage = fixed or wf.resolve(wf.start_uuid, u.data_hash, None)[0]
            status = TaskStatus.COMPLETED if stage.type.is_final else TaskStatus.NEW
            placed.append((u, tid, stage.uuid, status.value))
            if consensus:
                sub_rows.extend(enter_stage_rows(stage, tid, status))
        try:
            with self.write() as conn:
                insert_units(conn, project_id, dataset_id, at, placed)
                if sub_rows:
                    conn.execute(insert(subtasks), sub_rows)
        except IntegrityError as e:
            raise InvalidInputError(
                f"a data unit in this batch (first: {batch[0].title!r}) is already imported; data hashes must be unique"
            ) from e
        return len(batch)

    def get_data_units(self, hashes: Iterable[str]) -> dict[str, DataUnit]:
        """The data units with these hashes, by hash (missing ones are left out)."""
        wanted = list(hashes)
        with self.read() as conn:
            rows = conn.execute(select(data_units).where(data_units.c.data_hash.in_(wanted))).mappings()
            return {r["data_hash"]: DataUnit.model_validate(dict(r)) for r in rows}
