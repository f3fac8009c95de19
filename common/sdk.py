"""The Python API a user's script works with: projects, stages and tasks.

It reads like the workflow SDKs annotation teams know::

    from common.sdk import Client, AnnotationStage

    client = Client("sqlite:///.annoflow/annoflow.db", user="admin@acme.com")
    project = client.get_project("apples")
    stage = project.workflow.get_stage(name="Annotate 1", type_=AnnotationStage)
    for task in stage.get_tasks():
        task.assign("chris@acme.com")
        task.submit()
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

from common.enums import Action, StageType, TaskStatus
from common.errors import InvalidInputError, NotFoundError
from common.export import ExportSummary, Progress, export_project
from common.store import ActionRequest, LabelRow, ProjectRecord, Store, SubtaskRecord, TaskRecord
from common.store.filters import UNSET, named_filters
from common.workflow_graph import Stage

__all__ = [
    "AgentStage",
    "AnnotationStage",
    "AnnotationTask",
    "Client",
    "ConsensusAnnotationStage",
    "ConsensusReviewStage",
    "FinalStage",
    "Project",
    "ReviewStage",
    "ReviewTask",
    "Task",
    "WorkflowStage",
]


class Client:
    """A connection to an annoflow store, acting as ``user`` where an action needs someone."""

    def __init__(self, store: Store | str, user: str | None = None) -> None:
        self.store = Store.open(store) if isinstance(store, str) else store
        self.user = user

    def get_project(self, name_or_id: str) -> Project:
        """Raises: NotFoundError: no such project."""
        return Project(self, self.store.get_project(name_or_id))


class Project:
    """A project: its workflow and its labels."""

    def __init__(self, client: Client, record: ProjectRecord) -> None:
        self.client = client
        self.record = record
        self.uuid = record.id
        self.name = record.name
        self.workflow = Workflow(self)

    def get_label_row(self, data_hash: str, branch: str = "main") -> LabelRow:
        return self.client.store.get_label_row(self.uuid, data_hash, branch)

    def list_label_rows(self, data_hashes: Sequence[str], branch: str = "main") -> list[LabelRow]:
        return [self.get_label_row(h, branch) for h in data_hashes]

    def save_label_row(self, row: LabelRow) -> LabelRow:
        """Raises: ConflictError: someone saved the row since it was read."""
        return self.client.store.save_label_row(row)

    def export(
        self,
        format: str,
        output: str | Path,
        *,
        stage: str | None = None,
        status: str | Sequence[str] | None = None,
        version: int | None = None,
        root: str | Path | None = None,
        force: bool = False,
        on_progress: Progress | None = None,
    ) -> ExportSummary:
        """Export this project's labels (or saved version ``version``'s) to ``output``.

        ``format`` is ``coco``, ``yolo``, ``voc``, ``labelstudio`` or ``jsonl``; see
        :func:`common.export.export_project` for the other arguments.

        Raises:
            InvalidInputError: unknown format or status, an output outside ``root`` or one
                that exists without ``force``.
            NotFoundError: no such stage or version.
        """
        return export_project(
            self.client.store, self.uuid, format, output, stage=stage, status=status, version=version,
            root=root, force=force, on_progress=on_progress,
        )  # fmt: skip


S = TypeVar("S", bound="WorkflowStage")


class Workflow:
    """The stages of a project's workflow (routers are not listed)."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.graph = project.client.store.workflow(project.uuid)

    @property
    def stages(self) -> list[WorkflowStage]:
        return [_stage_view(self.project, s) for s in self.graph.user_stages()]

    @overload
    def get_stage(self, name: str | None = ..., uuid: str | None = ..., type_: None = ...) -> WorkflowStage: ...
    @overload
    def get_stage(self, name: str | None = ..., uuid: str | None = ..., *, type_: type[S]) -> S: ...

    def get_stage(
        self, name: str | None = None, uuid: str | None = None, type_: type[WorkflowStage] | None = None
    ) -> WorkflowStage:
        """Find a stage by name or UUID, optionally checking its type.

        Raises:
            NotFoundError: no such stage (routers count as absent).
            InvalidInputError: the stage is of another type than ``type_``.
        """
        key = name or uuid
        if key is None:
            raise InvalidInputError("get_stage needs name=... or uuid=...")
        stage = self.graph.stage(key)
        if stage.type.is_router:
            raise NotFoundError(f"'{key}' is a router; routers are not stages you can work in")
        view = _stage_view(self.project, stage)
        if type_ is not None and not isinstance(view, type_):
            raise InvalidInputError(f"stage '{stage.title}' is a {type(view).__name__}, not a {type_.__name__}")
        return view


class WorkflowStage:
    """A stage of the workflow; list its tasks with :meth:`get_tasks`."""

    def __init__(self, project: Project, stage: Stage) -> None:
        self.project = project
        self.stage = stage
        self.uuid = stage.uuid
        self.title = stage.title
        self.type = stage.type

    def get_tasks(
        self,
        status: TaskStatus | str | Sequence[TaskStatus | str] | None = None,
        assignee: str | Sequence[str] | None = UNSET,
        data_hash: str | Sequence[str] | None = None,
        data_title: str | None = None,
        dataset: str | None = None,
        filters: dict[str, Any] | None = None,
    ) -> Iterator[Task]:
        """Iterate the stage's tasks lazily (never all loaded at once).

        ``assignee=None`` lists unassigned tasks. ``filters`` takes the store's
        Django-style filter dict.
        """
        merged = {
            **named_filters(
                status=status, assignee=assignee, data_hash=data_hash, data_title=data_title, dataset=dataset
            ),
            **(filters or {}),
        }
        cls = _TASK_CLASSES[self.type]
        for record in self.project.client.store.iter_tasks(self.project.uuid, self.uuid, merged):
            yield cls(self, record)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(uuid={self.uuid!r}, title={self.title!r})"


class AnnotationStage(WorkflowStage):
    """People draw labels here."""


class ReviewStage(WorkflowStage):
    """People approve or reject labels here."""


class ConsensusAnnotationStage(WorkflowStage):
    """Several annotators label each item, each on a branch of their own."""


class ConsensusReviewStage(WorkflowStage):
    """A reviewer picks the winning branch."""


class AgentStage(WorkflowStage):
    """Code decides where each task goes."""


class FinalStage(WorkflowStage):
    """Complete or Archive."""


class Task:
    """A snapshot of one task; actions refresh it and fail on a stale snapshot."""

    def __init__(self, stage: WorkflowStage, record: TaskRecord) -> None:
        self._stage = stage
        self.record = record

    def __getattr__(self, name: str) -> Any:
        # uuid, data_hash, data_title, status, assignee, priority, ... come from the record.
        return getattr(self.__dict__["record"], name)

    @property
    def label_branch_name(self) -> str:
        return self.record.label_branch

    def _act(self, action: Action, **kw: Any) -> Task:
        client = self._stage.project.client
        request = ActionRequest(self.record.uuid, action, expected_version=self.record.version, **kw)
        self.record = client.store.act(request)
        return self

    def __repr__(self) -> str:
        r = self.record
        return (
            f"{type(self).__name__}(uuid={r.uuid!r}, data_title={r.data_title!r}, "
            f"status={r.status.value}, assignee={r.assignee!r})"
        )


class _Assignable(Task):
    def assign(self, assignee: str, by: str | None = None) -> Task:
        """Give the task to ``assignee``.

        Raises:
            ForbiddenError: they lack the stage's role or certifications.
        """
        return self._act(Action.ASSIGN, assignee=assignee, by=by)

    def release(self, by: str | None = None) -> Task:
        return self._act(Action.RELEASE, by=by)


class AnnotationTask(_Assignable):
    def submit(self, by: str | None = None) -> Task:
        """Send the task on; acts as its assignee unless ``by`` acts on their behalf."""
        return self._act(Action.SUBMIT, by=by)

    def skip(self, by: str | None = None) -> Task:
        return self._act(Action.SKIP, by=by or self.record.assignee or self._stage.project.client.user)


class ReviewTask(_Assignable):
    def approve(self, by: str | None = None) -> Task:
        return self._act(Action.APPROVE, by=by)

    def reject(self, by: str | None = None) -> Task:
        """Send the task back along the reject pathway; it arrives REOPENED."""
        return self._act(Action.REJECT, by=by)


@dataclass
class Subtask:
    """One annotator's part of a consensus task."""

    task: ConsensusAnnotationTask
    record: SubtaskRecord

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["record"], name)

    def _act(self, action: Action, **kw: Any) -> Subtask:
        self.task._act(action, subtask=self.record.uuid, **kw)
        store = self.task._stage.project.client.store
        fresh = {s.uuid: s for s in store.subtasks(self.task.record.uuid)}
        self.record = fresh.get(self.record.uuid, self.record)
        return self

    def assign(self, assignee: str, by: str | None = None) -> Subtask:
        return self._act(Action.ASSIGN, assignee=assignee, by=by)

    def release(self, by: str | None = None) -> Subtask:
        return self._act(Action.RELEASE, by=by)

    def submit(self, by: str | None = None) -> Subtask:
        return self._act(Action.SUBMIT, by=by)


class ConsensusAnnotationTask(Task):
    @property
    def subtasks(self) -> list[Subtask]:
        return [Subtask(self, s) for s in self._stage.project.client.store.subtasks(self.record.uuid)]


@dataclass(frozen=True)
class Option:
    """One annotator's branch offered to the consensus reviewer."""

    label_branch: str
    annotator: str | None
    label_row: LabelRow


class ConsensusReviewTask(_Assignable):
    @property
    def options(self) -> list[Option]:
        project = self._stage.project
        return [
            Option(s.label_branch, s.assignee, project.get_label_row(self.record.data_hash, s.label_branch))
            for s in project.client.store.subtasks(self.record.uuid)
        ]

    def approve(self, branch: str | None = None, by: str | None = None) -> Task:
        """Approve, making ``branch`` (a label branch or annotator email) the main labels."""
        return self._act(Action.APPROVE, branch=branch, by=by)

    def reject(self, by: str | None = None) -> Task:
        return self._act(Action.REJECT, by=by)


class AgentTask(Task):
    def proceed(self, pathway: str, by: str | None = None) -> Task:
        """Move along ``pathway`` (name or UUID)."""
        return self._act(Action.PROCEED, pathway=pathway, by=by or f"agent:{self._stage.title}")


class FinalTask(Task):
    def reopen(self, by: str | None = None) -> Task:
        """Send a finished task back to the first stage (not in consensus projects)."""
        return self._act(Action.REOPEN, by=by or self._stage.project.client.user)


_STAGE_CLASSES: dict[StageType, type[WorkflowStage]] = {
    StageType.ANNOTATION: AnnotationStage,
    StageType.REVIEW: ReviewStage,
    StageType.CONSENSUS_ANNOTATION: ConsensusAnnotationStage,
    StageType.CONSENSUS_REVIEW: ConsensusReviewStage,
    StageType.AGENT: AgentStage,
    StageType.COMPLETE: FinalStage,
    StageType.ARCHIVE: FinalStage,
}
_TASK_CLASSES: dict[StageType, type[Task]] = {
    StageType.ANNOTATION: AnnotationTask,
    StageType.REVIEW: ReviewTask,
    StageType.CONSENSUS_ANNOTATION: ConsensusAnnotationTask,
    StageType.CONSENSUS_REVIEW: ConsensusReviewTask,
    StageType.AGENT: AgentTask,
    StageType.COMPLETE: FinalTask,
    StageType.ARCHIVE: FinalTask,
}


def _stage_view(project: Project, stage: Stage) -> WorkflowStage:
    return _STAGE_CLASSES[stage.type](project, stage)
