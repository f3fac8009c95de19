"""Link a stage to a Label Studio project, push its tasks with pre-labels, pull annotations back exactly once.

An annotation is applied in one store transaction: its row in ``labelstudio_applied`` (the key is
the annotation id, so a second pull or webhook of it finds the row and changes nothing), the task's
label row, and the actions of the transition table as the annotator (assign when they do not hold
the task yet, then submit, or approve/reject as the review Choices says). An annotation for a task
that has moved on, or whose annotator is not a member with the stage's role, is reported and not
applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from common.enums import Action, StageType, TaskStatus
from common.errors import AnnoflowError, InvalidInputError, NotFoundError
from common.export.labelstudio import CONTROLS
from common.export.source import image_size, local_path
from common.labelstudio.client import LabelStudioClient
from common.labelstudio.mapping import check_config, label_config, objects_of, regions_of, review_action
from common.store import ActionRequest, Store
from common.store.labels import save_label_row
from common.store.lifecycle import execute, load_task
from common.store.records import LabelRow, now
from common.store.schema import data_units, label_rows, labelstudio_applied, labelstudio_links
from common.workflow_graph import Stage

__all__ = [
    "AnnotationSource",
    "Link",
    "PullReport",
    "PushReport",
    "apply_annotation",
    "find_link",
    "get_link",
    "link",
    "pull",
    "push",
]

_LINKABLE = (StageType.ANNOTATION, StageType.REVIEW)
_WAITING = frozenset({TaskStatus.NEW, TaskStatus.ASSIGNED, TaskStatus.RELEASED, TaskStatus.REOPENED})


@dataclass(frozen=True)
class Link:
    """One annoflow stage shown in one Label Studio project."""

    project_id: str
    stage_uuid: str
    stage_title: str
    review: bool
    url: str
    ls_project: int


class AnnotationSource(Protocol):
    """What applying an annotation reads from Label Studio: :class:`LabelStudioClient`, or a fake in tests."""

    url: str

    def annotation(self, annotation_id: int) -> dict[str, Any]: ...

    def task(self, task_id: int) -> dict[str, Any]: ...

    def user_email(self, user: int | dict[str, Any]) -> str: ...


@dataclass
class PushReport:
    pushed: int = 0
    already: int = 0


@dataclass
class PullReport:
    applied: list[str] = field(default_factory=list)  # "task uuid: action by email"
    unchanged: int = 0  # annotations applied before (a second pull, a second webhook)
    reported: list[str] = field(default_factory=list)  # one line per annotation not applied, and why


def _stage(store: Store, project_id: str, stage: str) -> Stage:
    found = store.workflow(project_id).stage(stage)
    if found.type not in _LINKABLE:
        raise InvalidInputError(
            f"stage '{found.title}' is a {found.type.value} stage; only annotation and review stages can be "
            "shown in Label Studio"
        )
    return found


def link(
    store: Store,
    client: LabelStudioClient,
    project: str,
    stage: str,
    ls_project: int | None = None,
    labels: list[str] | None = None,
) -> Link:
    """Link ``stage`` of ``project`` to Label Studio project ``ls_project``, or to a new one with annoflow's config.

    Raises:
        NotFoundError: no such project or stage, or no such Label Studio project.
        InvalidInputError: the stage is not annotation or review; the stage is linked already.
        LabelStudioConfigError: the existing project's labelling config is foreign.
    """
    record = store.get_project(project)
    st = _stage(store, record.id, stage)
    review = st.type is StageType.REVIEW
    if ls_project is None:
        seen = {"bbox": dict.fromkeys(labels)} if labels else _labels_seen(store, record.id)
        config = label_config(seen, review)
        ls_project = int(client.create_project(f"{record.name}: {st.title}", config)["id"])
    else:
        check_config(str(client.project(ls_project).get("label_config", "")), ls_project, review)
    with store.write() as conn:
        try:
            conn.execute(
                insert(labelstudio_links).values(
                    project_id=record.id, stage_uuid=st.uuid, url=client.url, ls_project=ls_project, created_at=now()
                )
            )
        except IntegrityError as e:
            raise InvalidInputError(f"stage '{st.title}' of {record.name} is linked to Label Studio already") from e
    return Link(record.id, st.uuid, st.title, review, client.url, ls_project)


def get_link(store: Store, project: str, stage: str) -> Link:
    """Raises: NotFoundError: the stage is not linked (run ``annoflow labelstudio link`` first)."""
    record = store.get_project(project)
    st = _stage(store, record.id, stage)
    with store.read() as conn:
        row = conn.execute(
            select(labelstudio_links).where(
                labelstudio_links.c.project_id == record.id, labelstudio_links.c.stage_uuid == st.uuid
            )
        ).first()
    if row is None:
        raise NotFoundError(f"stage '{st.title}' of {record.name} is not linked; run annoflow labelstudio link first")
    return Link(record.id, st.uuid, st.title, st.type is StageType.REVIEW, row.url, row.ls_project)


def find_link(store: Store, url: str, ls_project: int) -> Link:
    """The link of Label Studio project ``ls_project`` of the server at ``url`` (what a webhook names).

    Raises:
        NotFoundError: no stage is linked to that Label Studio project.
    """
    with store.read() as conn:
        row = conn.execute(
            select(labelstudio_links)
            .where(labelstudio_links.c.url == url.rstrip("/"), labelstudio_links.c.ls_project == ls_project)
            .order_by(labelstudio_links.c.created_at)
        ).first()
    if row is None:
        raise NotFoundError(
            f"Label Studio project {ls_project} at {url} is linked to no annoflow stage; "
            "run annoflow labelstudio link --ls-project first"
        )
    st = store.workflow(str(row.project_id)).stage(str(row.stage_uuid))
    return Link(str(row.project_id), st.uuid, st.title, st.type is StageType.REVIEW, row.url, row.ls_project)


def _labels_seen(store: Store, project_id: str) -> dict[str, dict[str, None]]:
    """Region kind -> the label names its objects use, in first-seen order."""
    seen: dict[str, dict[str, None]] = {}
    with store.read() as conn:
        rows = conn.execute(select(label_rows.c.objects).where(label_rows.c.project_id == project_id)).scalars()
        for region in (r for objs in rows for r in regions_of(list(objs or []), 1, 1)):
            kind = next(k for k, c in CONTROLS.items() if c[0] == region["type"])
            for name in region["value"][CONTROLS[kind][3]]:
                seen.setdefault(kind, {})[name] = None
    return seen


def _image(url: str, local_root: str) -> str:
    path = local_path(url)
    if local_root and path is not None:
        try:
            return f"/data/local-files/?d={path.resolve().relative_to(Path(local_root).resolve())}"
        except ValueError:
            pass
    return url


def push(store: Store, client: LabelStudioClient, lnk: Link, local_files_root: str = "") -> PushReport:
    """Import the stage's waiting tasks that Label Studio does not have yet, their labels as predictions."""
    have = {t["data"].get("annoflow_task") for t in client.tasks(lnk.ls_project)}
    report = PushReport()
    batch: list[dict[str, Any]] = []
    for task in store.iter_tasks(lnk.project_id, lnk.stage_uuid, {"status__in": [s.value for s in _WAITING]}):
        if task.uuid in have:
            report.already += 1
            continue
        with store.read() as conn:
            unit = conn.execute(select(data_units).where(data_units.c.data_hash == task.data_hash)).mappings().one()
        files = dict(unit["files"])
        primary: dict[str, Any] = next(
            (f for f in files.values() if f.get("is_primary")), next(iter(files.values()), {})
        )
        url = str(primary.get("url") or "")
        w, h = image_size(dict(unit["meta"]), url)
        row = store.get_label_row(lnk.project_id, task.data_hash, task.label_branch)
        item: dict[str, Any] = {
            "data": {
                "image": _image(url, local_files_root),
                "title": task.data_title,
                "annoflow_task": task.uuid,
                "data_hash": task.data_hash,
            }
        }
        regions = regions_of(row.objects, w, h)
        if regions:
            item["predictions"] = [{"model_version": "annoflow", "result": regions}]
        batch.append(item)
    # Label Studio serves /data/local-files/ only under a storage of the project (a folder below its root).
    for folder in sorted(
        {
            str(Path(local_files_root, i["data"]["image"].split("?d=", 1)[1]).resolve().parent)
            for i in batch
            if i["data"]["image"].startswith("/data/local-files/")
        }
    ):
        client.ensure_local_storage(lnk.ls_project, folder)
    for start in range(0, len(batch), 500):
        client.import_tasks(lnk.ls_project, batch[start : start + 500])
    report.pushed = len(batch)
    return report


def pull(store: Store, client: LabelStudioClient, lnk: Link) -> PullReport:
    """Apply every submitted annotation of the linked project not applied yet."""
    report = PullReport()
    for ls_task in client.tasks(lnk.ls_project):
        for annotation in ls_task.get("annotations") or []:
            apply_annotation(store, client, lnk, ls_task, annotation, report)
    return report


def apply_annotation(
    store: Store,
    client: AnnotationSource,
    lnk: Link,
    ls_task: dict[str, Any],
    annotation: dict[str, Any],
    report: PullReport,
) -> None:
    """Apply one annotation exactly once; what cannot be applied goes to ``report.reported``."""
    ann_id = int(annotation["id"])
    task_uuid = ls_task.get("data", {}).get("annoflow_task")
    if annotation.get("was_cancelled") or not task_uuid:
        return
    with store.read() as conn:
        done = conn.execute(
            select(labelstudio_applied.c.annotation_id).where(
                labelstudio_applied.c.project_id == lnk.project_id,
                labelstudio_applied.c.stage_uuid == lnk.stage_uuid,
                labelstudio_applied.c.annotation_id == ann_id,
            )
        ).first()
    if done is not None:
        report.unchanged += 1
        return
    result = list(annotation.get("result") or [])
    email = client.user_email(annotation["completed_by"])
    action = review_action(result) if lnk.review else Action.SUBMIT
    if action is None:
        report.reported.append(f"annotation {ann_id} of task {task_uuid}: no approve/reject chosen; not applied")
        return
    wf = store.workflow(lnk.project_id)
    try:
        with store.write() as conn:
            conn.execute(
                insert(labelstudio_applied).values(
                    project_id=lnk.project_id,
                    stage_uuid=lnk.stage_uuid,
                    annotation_id=ann_id,
                    task_uuid=task_uuid,
                    annotator=email,
                    action=action.value,
                    applied_at=now(),
                )
            )
            _apply(conn, wf, lnk, task_uuid, email, action, objects_of(result, email, ann_id))
    except IntegrityError:
        report.unchanged += 1  # a webhook and a pull raced; the other one applied it
    except AnnoflowError as e:
        report.reported.append(f"annotation {ann_id} of task {task_uuid} by {email}: {e}; not applied")
    else:
        report.applied.append(f"{task_uuid}: {action.value} by {email}")


def _apply(
    conn: Connection, wf: Any, lnk: Link, task_uuid: str, email: str, action: Action, objects: list[dict[str, Any]]
) -> None:
    task = load_task(conn, task_uuid)
    if task.stage_uuid != lnk.stage_uuid or task.status not in _WAITING:
        where = wf.stages[task.stage_uuid].title if task.stage_uuid in wf.stages else task.stage_uuid
        raise InvalidInputError(f"the task has moved on (it is {task.status.value} in '{where}')")
    current = conn.execute(
        select(label_rows.c.version).where(
            label_rows.c.project_id == task.project_id,
            label_rows.c.data_hash == task.data_hash,
            label_rows.c.branch == task.label_branch,
        )
    ).scalar()
    if not lnk.review or objects:
        save_label_row(
            conn,
            LabelRow(
                project_id=task.project_id,
                data_hash=task.data_hash,
                branch=task.label_branch,
                objects=objects,
                version=int(current or 0),
            ),
        )
    if task.assignee != email:
        execute(conn, wf, ActionRequest(task_uuid, Action.ASSIGN, assignee=email, by=email))
    execute(conn, wf, ActionRequest(task_uuid, action, by=email))
