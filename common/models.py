"""The wire contract: every message that crosses a queue, as pydantic models (JSON only).

``TaskSpec`` carries the fields of the public encord-agents task JSON (``uuid``,
``data_hash``, ``data_title``, ``label_branch_name``, ``status``, ``assignee``,
``created_at``, ``updated_at``) plus what a handler needs: stage, project,
lease, files and, on request, the current labels.

``TaskCompletionResult`` has encord-agents' ``task_uuid``, ``stage_uuid``,
``success``, ``pathway`` (a UUID) and ``error``, plus annoflow's additions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DataFile", "LabelPayload", "SpecIdentity", "TaskCompletionResult", "TaskSpec", "WorkKind"]

WorkKind = Literal["agent", "totask.file", "totask.inference"]


class DataFile(BaseModel):
    """One file of a data unit, under its specification name (the store hands out the same model)."""

    model_config = ConfigDict(frozen=True)

    url: str
    original_name: str = ""
    is_primary: bool = False


class LabelPayload(BaseModel):
    """The annotation objects of a label row, with the version they were read at."""

    branch: str = "main"
    version: int = 0
    objects: list[dict[str, Any]] = Field(default_factory=list)


class TaskSpec(BaseModel):
    """One task, as the producer publishes it to a stage queue."""

    model_config = ConfigDict(extra="ignore")

    # encord-agents' task fields
    uuid: UUID
    data_hash: UUID
    data_title: str
    label_branch_name: str = "main"
    status: str
    assignee: str | None = None
    created_at: datetime
    updated_at: datetime
    last_actioned_by: str | None = None  # also in the SDK's agent-task model
    # annoflow's additions
    project_uuid: str
    project_name: str
    stage_uuid: UUID
    stage_title: str
    # The stage's pathways by name, so a worker turns a returned name into a UUID
    # (and rejects an unknown one) without reaching the store.
    pathways: dict[str, UUID] = Field(default_factory=dict)
    kind: WorkKind = "agent"
    lease_token: str
    attempt: int = 1
    priority: float = 0.5
    files: dict[str, DataFile] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)
    labels: LabelPayload | None = None
    run_id: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class SpecIdentity(BaseModel):
    """The part of a spec a failure result needs: read from a spec that is otherwise not valid."""

    model_config = ConfigDict(extra="ignore")

    uuid: UUID
    stage_uuid: UUID | None = None
    lease_token: str
    attempt: int = 1
    run_id: str | None = None


class TaskCompletionResult(BaseModel):
    """What a worker answers for one task, success or failure."""

    model_config = ConfigDict(extra="ignore")

    # encord-agents' fields
    task_uuid: UUID
    stage_uuid: UUID | None = None
    success: bool
    pathway: UUID | None = None
    error: str | None = None
    # annoflow's additions
    lease_token: str | None = None
    labels: LabelPayload | None = None  # replaces the label row when present
    priority: float | None = None  # 0.0 is a valid priority; None leaves it alone
    run_id: str | None = None
    attempt: int = 1
    started_at: datetime | None = None
    finished_at: datetime | None = None
    worker: str | None = None

    @classmethod
    def failed(
        cls,
        spec: TaskSpec | SpecIdentity,
        error: str,
        *,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        worker: str | None = None,
    ) -> TaskCompletionResult:
        """The failure answer for ``spec``: same task, stage, lease, run and attempt."""
        return cls(
            task_uuid=spec.uuid,
            stage_uuid=spec.stage_uuid,
            success=False,
            error=error,
            lease_token=spec.lease_token,
            run_id=spec.run_id,
            attempt=spec.attempt,
            started_at=started_at,
            finished_at=finished_at,
            worker=worker,
        )
