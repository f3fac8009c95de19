"""Plain records the store hands out: immutable snapshots of rows, and the clock that stamps them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from common.enums import Role, TaskStatus
from common.models import DataFile

__all__ = [
    "DataFile",
    "DataUnit",
    "EventRecord",
    "LabelRow",
    "ProjectRecord",
    "RunRecord",
    "SubtaskRecord",
    "TaskRecord",
    "TaskState",
    "UserRecord",
    "now",
]


def now() -> datetime:
    """The time the store writes on rows: timezone-aware, in UTC."""
    return datetime.now(UTC)


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class ProjectRecord(_Record):
    id: str
    name: str
    description: str
    workflow_version: int
    created_at: datetime


class DataUnit(_Record):
    """An item to annotate: an image, a video, a document, with its files."""

    data_hash: str
    title: str
    dataset_id: str = ""
    meta: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, DataFile] = Field(default_factory=dict)

    @property
    def primary(self) -> DataFile | None:
        """The primary file, or the only file when none is marked primary."""
        for f in self.files.values():
            if f.is_primary:
                return f
        return next(iter(self.files.values())) if len(self.files) == 1 else None


class UserRecord(_Record):
    email: str
    name: str
    role: Role | None = None
    certifications: tuple[str, ...] = ()


class TaskRecord(_Record):
    """A task as stored: where it is, who holds it, its lease."""

    id: int
    uuid: str
    project_id: str
    data_hash: str
    data_title: str
    dataset_id: str
    stage_uuid: str
    status: TaskStatus
    assignee: str | None
    priority: float
    label_branch: str
    created_at: datetime
    updated_at: datetime
    last_actioned_by: str | None
    lease_token: str | None
    lease_deadline: datetime | None
    attempts: int
    last_error: str | None
    version: int


@dataclass(frozen=True, slots=True)
class TaskState:
    """The part of a task a result is applied against: where it is, its lease and its version.

    What the result applier reads (and on PostgreSQL locks) for every result: a
    plain dataclass of ten columns, built from the row as it comes, where a full
    :class:`TaskRecord` costs the read twice as many columns and a validation.
    """

    id: int
    uuid: str
    project_id: str
    data_hash: str
    stage_uuid: str
    status: TaskStatus
    label_branch: str
    lease_token: str | None
    attempts: int
    version: int


class SubtaskRecord(_Record):
    """One annotator's share of a consensus task, with its own label branch."""

    uuid: str
    task_uuid: str
    label_branch: str
    assignee: str | None
    status: TaskStatus
    updated_at: datetime


class LabelRow(_Record):
    """The annotation objects of one data unit on one branch."""

    project_id: str
    data_hash: str
    branch: str
    objects: list[dict[str, Any]]
    version: int


class EventRecord(_Record):
    """One line of the append-only history."""

    id: int
    task_uuid: str
    actor: str | None
    action: str
    from_stage: str | None
    to_stage: str | None
    from_status: str | None
    to_status: str | None
    pathway: str | None
    run_id: str | None
    at: datetime
    detail: dict[str, Any] | None = None


class RunRecord(_Record):
    """A producer run, agent run or ToTask run and its metrics."""

    id: str
    project_id: str | None
    kind: str
    name: str
    status: str
    message: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    created_at: datetime
    updated_at: datetime
