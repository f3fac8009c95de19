"""What a handler can ask for: the task's context, built once per task from its spec."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

from common.models import TaskSpec
from common.runner.labels import LabelRowEditor
from common.store.records import DataUnit

__all__ = ["ProjectInfo", "StageInfo", "TaskContext"]


@dataclass(frozen=True)
class ProjectInfo:
    """The project a task belongs to."""

    uuid: str
    name: str


@dataclass(frozen=True)
class StageInfo:
    """The stage a task waits in, with its pathways by name."""

    uuid: UUID
    title: str
    pathways: dict[str, UUID]


@dataclass
class TaskContext:
    """Everything injectable for one task; handlers take the parts they name."""

    spec: TaskSpec
    # The batch's prefetched asset for this task, if the handler asked for one.
    asset: Path | None = None
    asset_error: str | None = None
    # Made when a handler first asks for it: most tasks never touch their labels.
    edited: LabelRowEditor | None = field(default=None, init=False)

    @property
    def label_row(self) -> LabelRowEditor:
        """The task's editable label row."""
        if self.edited is None:
            self.edited = LabelRowEditor(self.spec.labels)
        return self.edited

    @property
    def project(self) -> ProjectInfo:
        return ProjectInfo(uuid=self.spec.project_uuid, name=self.spec.project_name)

    @property
    def stage(self) -> StageInfo:
        return StageInfo(uuid=self.spec.stage_uuid, title=self.spec.stage_title, pathways=dict(self.spec.pathways))

    @property
    def data_unit(self) -> DataUnit:
        return DataUnit(
            data_hash=str(self.spec.data_hash),
            title=self.spec.data_title,
            meta=dict(self.spec.meta),
            files=dict(self.spec.files),
        )
