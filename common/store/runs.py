"""Runs: one row per producer, agent or ToTask run, with its parameters, status and metrics.

A run is created RUNNING and updated as it goes; :meth:`RunsMixin.get_run` finds
one by id, unique id prefix or name.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert, select, update

from common.errors import NotFoundError
from common.store.connections import StoreBase
from common.store.records import RunRecord, now
from common.store.schema import runs

__all__ = ["RunsMixin"]


class RunsMixin(StoreBase):
    """The runs part of :class:`common.store.Store`."""

    def create_run(self, project_id: str | None, kind: str, name: str, params: dict[str, Any]) -> RunRecord:
        rid = str(uuid.uuid4())
        at = now()
        with self.write() as conn:
            conn.execute(
                insert(runs).values(
                    id=rid,
                    project_id=project_id,
                    kind=kind,
                    name=name,
                    status="RUNNING",
                    message="",
                    params=params,
                    metrics={},
                    created_at=at,
                    updated_at=at,
                )
            )
        return self.get_run(rid)

    def update_run(self, run_id: str, **values: Any) -> None:
        with self.write() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(updated_at=now(), **values))

    def get_run(self, run_id: str) -> RunRecord:
        """Raises: NotFoundError: no run with that id (or unique id prefix) or name."""
        with self.read() as conn:
            rows = (
                conn.execute(select(runs).where(runs.c.id.startswith(run_id) | (runs.c.name == run_id)).limit(2))
                .mappings()
                .all()
            )
        if len(rows) != 1:
            what = "is ambiguous" if rows else "matches no run"
            raise NotFoundError(f"{run_id!r} {what}; list runs with 'annoflow runs list'")
        return RunRecord.model_validate(dict(rows[0]))

    def list_runs(self, project_id: str | None = None) -> list[RunRecord]:
        query = select(runs).order_by(runs.c.created_at.desc())
        if project_id is not None:
            query = query.where(runs.c.project_id == project_id)
        with self.read() as conn:
            return [RunRecord.model_validate(dict(r)) for r in conn.execute(query).mappings()]
