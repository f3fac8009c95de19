"""Execute one transition of the table in :mod:`common.transitions` on the database.

Everything here runs inside the caller's transaction: the task row is updated
with an optimistic version check, the event is appended, consensus subtasks and
label rows follow. A concurrent change makes the update miss and raises
:class:`ConflictError`, so a task is never left half-moved.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from common.enums import Action, Role, StageType, TaskStatus
from common.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    TransitionNotAllowedError,
)
from common.store.records import SubtaskRecord, TaskRecord
from common.store.schema import certifications, events, label_rows, memberships, subtasks, tasks
from common.transitions import Move, Rule, arrival_status, rule_for
from common.workflow import Pathway, Stage, Workflow

__all__ = ["ActionRequest", "MovePlan", "copy_labels", "enter_stage_rows", "execute", "plan_move", "record_event"]

# Who may act on a task another user holds (submit or release it for them).
_MANAGERS = frozenset({Role.TEAM_MANAGER, Role.ADMIN})


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ActionRequest:
    """What the caller asks for."""

    task_uuid: str
    action: Action
    by: str | None = None  # the acting user; defaults to the assignee
    assignee: str | None = None  # for assign
    pathway: str | None = None  # for proceed (name or uuid)
    branch: str | None = None  # for consensus approve: the winning branch or annotator
    subtask: str | None = None  # for consensus annotation: subtask uuid
    expected_version: int | None = None  # the version the caller last saw
    lease_token: str | None = None  # results from workers must still hold the lease
    run_id: str | None = None


def load_task(conn: Connection, task_uuid: str) -> TaskRecord:
    row = conn.execute(select(tasks).where(tasks.c.uuid == task_uuid)).mappings().first()
    if row is None:
        raise NotFoundError(f"no task {task_uuid}; list tasks with 'annoflow tasks list --project NAME'")
    return TaskRecord.model_validate(dict(row))


def load_subtasks(conn: Connection, task_uuid: str) -> list[SubtaskRecord]:
    rows = conn.execute(
        select(subtasks).where(subtasks.c.task_uuid == task_uuid).order_by(subtasks.c.label_branch)
    ).mappings()
    return [SubtaskRecord.model_validate(dict(r)) for r in rows]


def record_event(conn: Connection, task: TaskRecord, **values: Any) -> None:
    conn.execute(insert(events).values(project_id=task.project_id, task_uuid=task.uuid, at=now(), **values))


def _record_in_stage(
    conn: Connection,
    task: TaskRecord,
    req: ActionRequest,
    stage: Stage,
    actor: str,
    from_status: str,
    to_status: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """The event of an action that leaves the task in its stage (assign, release, a subtask's submit)."""
    extra = {} if detail is None else {"detail": detail}  # no detail: the column stays SQL NULL
    record_event(
        conn,
        task,
        actor=actor or None,
        action=req.action.value,
        from_stage=stage.uuid,
        to_stage=stage.uuid,
        from_status=from_status,
        to_status=to_status,
        run_id=req.run_id,
        **extra,
    )


def _role(conn: Connection, project_id: str, email: str) -> Role | None:
    value = conn.execute(
        select(memberships.c.role).where(memberships.c.project_id == project_id, memberships.c.email == email)
    ).scalar()
    return Role(value) if value else None


def _check_role(
    conn: Connection, task: TaskRecord, stage: Stage, rule: Rule, action: Action, who: str, for_whom: str = ""
) -> None:
    if rule.roles is None:
        return
    role = _role(conn, task.project_id, who)
    if role not in rule.roles:
        need = ", ".join(sorted(r.value for r in rule.roles))
        has = role.value if role else "no role on this project"
        what = f"be the user {for_whom} acts for" if for_whom else action.value
        raise ForbiddenError(
            f"{who} cannot {what} in {stage.type.value} stage '{stage.title}': "
            f"they have {has}; it needs one of: {need} ('annoflow users add {who} --project ... --role ...')"
        )


def _check_on_behalf(
    conn: Connection, task: TaskRecord, stage: Stage, rule: Rule, action: Action, actor: str, holder: str | None
) -> None:
    """Acting on work someone else holds: they must have the role, and the actor must manage the project."""
    if not holder or not actor or holder == actor:
        return
    # "Submitted on behalf of" users with the stage's roles: the holder's role counts too.
    _check_role(conn, task, stage, rule, action, holder, for_whom=actor)
    if _role(conn, task.project_id, actor) not in _MANAGERS:
        raise ForbiddenError(
            f"{actor} cannot {action.value} work that {holder} holds in stage '{stage.title}': only the assignee, "
            f"a team_manager or an admin can; leave out --by to act as {holder}, or assign it to {actor} first"
        )


def _check_certifications(conn: Connection, stage: Stage, who: str) -> None:
    if not stage.certifications:
        return
    held = set(conn.execute(select(certifications.c.name).where(certifications.c.email == who)).scalars())
    missing = [c for c in stage.certifications if c not in held]
    if missing:
        raise ForbiddenError(
            f"{who} cannot be assigned in stage '{stage.title}': missing certification(s) "
            f"{', '.join(missing)}; grant them with 'annoflow users certify {who} NAME'"
        )


def enter_stage_rows(stage: Stage, task_uuid: str, status: TaskStatus) -> list[dict[str, Any]]:
    """Subtask rows a task needs when it enters ``stage`` (consensus annotation only)."""
    if stage.type is not StageType.CONSENSUS_ANNOTATION or not stage.annotators:
        return []
    at = now()
    return [
        {
            "uuid": str(uuid.uuid4()),
            "task_uuid": task_uuid,
            "label_branch": f"consensus-{i + 1}",
            "assignee": None,
            "status": status.value,
            "updated_at": at,
        }
        for i in range(stage.annotators)
    ]


def copy_labels(conn: Connection, project_id: str, data_hash: str, source: str, target: str) -> None:
    """Make branch ``target`` hold the objects of branch ``source``."""
    src = conn.execute(
        select(label_rows.c.objects).where(
            label_rows.c.project_id == project_id,
            label_rows.c.data_hash == data_hash,
            label_rows.c.branch == source,
        )
    ).scalar()
    objects = src if src is not None else []
    done = conn.execute(
        update(label_rows)
        .where(
            label_rows.c.project_id == project_id,
            label_rows.c.data_hash == data_hash,
            label_rows.c.branch == target,
        )
        .values(objects=objects, version=label_rows.c.version + 1, updated_at=now())
    )
    if done.rowcount == 0:
        conn.execute(
            insert(label_rows).values(
                project_id=project_id,
                data_hash=data_hash,
                branch=target,
                objects=objects,
                version=1,
                updated_at=now(),
            )
        )


def _destination(wf: Workflow, stage: Stage, rule: Rule, req: ActionRequest) -> Pathway | None:
    if rule.move is Move.SINGLE:
        return stage.pathways[0]
    if rule.move is Move.NAMED:
        assert rule.pathway is not None
        return stage.pathway(rule.pathway)
    if rule.move is Move.CHOSEN:
        if req.pathway is None:
            raise InvalidInputError(
                f"say which pathway to take from stage '{stage.title}': " + ", ".join(p.name for p in stage.pathways)
            )
        return stage.pathway(req.pathway)
    return None


def _write_task(conn: Connection, task: TaskRecord, values: dict[str, Any]) -> None:
    values = {**values, "updated_at": now(), "version": task.version + 1}
    done = conn.execute(
        update(tasks).where(tasks.c.uuid == task.uuid, tasks.c.version == task.version).values(**values)
    )
    if done.rowcount != 1:
        raise ConflictError(
            f"task {task.uuid} was changed by another process while this action ran; "
            "read it again and retry if the action still applies"
        )


def execute(conn: Connection, wf: Workflow, req: ActionRequest) -> TaskRecord:
    """Apply ``req`` to its task; return the task as it is afterwards.

    Raises:
        NotFoundError: no such task, subtask, pathway or branch.
        TransitionNotAllowedError: the action does not apply to the task now.
        ForbiddenError: the acting user lacks the role or certification.
        ConflictError: another process changed the task first.
        InvalidInputError: a needed argument (pathway, branch, user) is missing.
    """
    task = load_task(conn, req.task_uuid)
    if req.expected_version is not None and req.expected_version != task.version:
        raise ConflictError(
            f"task {task.uuid} changed since you read it (it is now {task.status.value} in stage "
            f"'{wf.stages[task.stage_uuid].title}'); read it again and retry if the action still applies"
        )
    if req.lease_token is not None and req.lease_token != task.lease_token:
        raise ConflictError(f"task {task.uuid} no longer holds lease {req.lease_token}; result is stale")
    stage = wf.stages[task.stage_uuid]
    if stage.type is StageType.CONSENSUS_ANNOTATION:
        return _execute_subtask(conn, wf, stage, task, req)
    rule = rule_for(stage.type, req.action, task.status, stage.title)
    if rule.move is Move.START and wf.is_consensus:
        raise TransitionNotAllowedError(
            f"task {task.uuid} is in '{stage.title}' of a consensus project; such tasks cannot be reopened"
        )
    if rule.sets_assignee:
        who = req.assignee or req.by
        if not who:
            raise InvalidInputError("assign needs the email of the user to assign")
        _check_role(conn, task, stage, rule, req.action, who)
        _check_certifications(conn, stage, who)
        actor = req.by or who
    else:
        actor = req.by or task.assignee or ""
        if rule.roles is not None and not actor:
            raise InvalidInputError(f"{req.action.value} needs the acting user: pass by=EMAIL (--by EMAIL)")
        _check_role(conn, task, stage, rule, req.action, actor)
        if stage.type is not StageType.AGENT:
            _check_on_behalf(conn, task, stage, rule, req.action, actor, task.assignee)
    if rule.move is Move.STAY:
        assert rule.status is not None
        values: dict[str, Any] = {"status": rule.status.value, "last_actioned_by": actor or None}
        if rule.sets_assignee:
            values["assignee"] = req.assignee or req.by
        if rule.clears_assignee:
            values["assignee"] = None
        _write_task(conn, task, values)
        _record_in_stage(conn, task, req, stage, actor, task.status.value, rule.status.value)
        return load_task(conn, task.uuid)
    if stage.type is StageType.CONSENSUS_REVIEW and req.action is Action.APPROVE:
        _choose_branch(conn, task, req)
    pathway = _destination(wf, stage, rule, req)
    return move(conn, wf, task, pathway, rule, req.action, actor, req.run_id)


@dataclass(frozen=True)
class MovePlan:
    """What moving one task writes: its new column values, subtask rows and its one event."""

    values: dict[str, Any]  # task columns, without updated_at and version
    subtask_rows: list[dict[str, Any]]  # a fresh consensus round, or empty
    event: dict[str, Any]  # the event's columns, without project_id, task_uuid and at


def plan_move(
    wf: Workflow,
    task: TaskRecord,
    pathway: Pathway | None,
    rule: Rule,
    action: Action,
    actor: str | None,
    run_id: str | None,
    extra: dict[str, Any] | None = None,
) -> MovePlan:
    """Work out a move along ``pathway`` (the start stage when None), through routers, without writing.

    :func:`move` executes it for one task; the result applier executes many at once.
    """
    target = pathway.to if pathway is not None else wf.start_uuid
    dest, routed = wf.resolve(target, task.data_hash, actor)
    status = arrival_status(dest.type, rule)
    values: dict[str, Any] = {
        "stage_uuid": dest.uuid,
        "status": status.value,
        "assignee": None,
        "last_actioned_by": actor or None,
        "lease_token": None,
        "lease_deadline": None,
        "attempts": 0,
        "last_error": None,
        **(extra or {}),
    }
    event = {
        "actor": actor or None,
        "action": action.value,
        "from_stage": task.stage_uuid,
        "to_stage": dest.uuid,
        "from_status": task.status.value,
        "to_status": status.value,
        "pathway": pathway.uuid if pathway else None,
        "run_id": run_id,
        "detail": {"routers": [p.uuid for p in routed]} if routed else None,
    }
    return MovePlan(values, enter_stage_rows(dest, task.uuid, status), event)


def move(
    conn: Connection,
    wf: Workflow,
    task: TaskRecord,
    pathway: Pathway | None,
    rule: Rule,
    action: Action,
    actor: str | None,
    run_id: str | None,
    extra: dict[str, Any] | None = None,
) -> TaskRecord:
    """Move ``task`` along ``pathway`` (or to the start stage when it is None), through routers."""
    plan = plan_move(wf, task, pathway, rule, action, actor, run_id, extra)
    _write_task(conn, task, plan.values)
    if plan.subtask_rows:
        # A fresh round of consensus; the previous round's options are replaced.
        conn.execute(delete(subtasks).where(subtasks.c.task_uuid == task.uuid))
        conn.execute(insert(subtasks), plan.subtask_rows)
    record_event(conn, task, **plan.event)
    return load_task(conn, task.uuid)


def _choose_branch(conn: Connection, task: TaskRecord, req: ActionRequest) -> None:
    options = load_subtasks(conn, task.uuid)
    names = ", ".join(f"{o.label_branch} ({o.assignee})" for o in options) or "none"
    if not req.branch:
        raise InvalidInputError(f"approve of consensus task {task.uuid} needs the winning branch; options: {names}")
    chosen = next((o for o in options if req.branch in (o.label_branch, o.assignee, o.uuid)), None)
    if chosen is None:
        raise NotFoundError(f"consensus task {task.uuid} has no option {req.branch!r}; options: {names}")
    copy_labels(conn, task.project_id, task.data_hash, chosen.label_branch, task.label_branch)


def _execute_subtask(conn: Connection, wf: Workflow, stage: Stage, task: TaskRecord, req: ActionRequest) -> TaskRecord:
    if req.subtask is None:
        raise TransitionNotAllowedError(
            f"cannot {req.action.value} consensus annotation task {task.uuid} itself; "
            f"{req.action.value} one of its subtasks instead (task.subtasks, one per annotator)"
        )
    subs = load_subtasks(conn, task.uuid)
    sub = next((s for s in subs if s.uuid == req.subtask), None)
    if sub is None:
        raise NotFoundError(f"task {task.uuid} has no subtask {req.subtask}")
    rule = rule_for(stage.type, req.action, sub.status, stage.title)
    values: dict[str, Any] = {"status": rule.status.value if rule.status else sub.status.value, "updated_at": now()}
    if rule.sets_assignee:
        who = req.assignee or req.by
        if not who:
            raise InvalidInputError("assign needs the email of the user to assign")
        if any(s.assignee == who and s.uuid != sub.uuid for s in subs):
            raise TransitionNotAllowedError(
                f"{who} already holds a subtask of consensus task {task.uuid}; each annotator gets one subtask"
            )
        _check_role(conn, task, stage, rule, req.action, who)
        _check_certifications(conn, stage, who)
        values["assignee"] = who
        actor = req.by or who
    else:
        actor = req.by or sub.assignee or ""
        _check_role(conn, task, stage, rule, req.action, actor)
        _check_on_behalf(conn, task, stage, rule, req.action, actor, sub.assignee)
        if rule.clears_assignee:
            values["assignee"] = None
    done = conn.execute(
        update(subtasks)
        .where(
            subtasks.c.uuid == sub.uuid, subtasks.c.status == sub.status.value, subtasks.c.updated_at == sub.updated_at
        )
        .values(**values)
    )
    if done.rowcount != 1:
        raise ConflictError(f"subtask {sub.uuid} was changed by another process; read it again")
    # Touch the parent so concurrent actions on the same task conflict cleanly.
    _write_task(conn, task, {"last_actioned_by": actor or None})
    task = load_task(conn, task.uuid)
    detail = {"subtask": sub.uuid, "branch": sub.label_branch}
    _record_in_stage(conn, task, req, stage, actor, sub.status.value, values["status"], detail)
    if rule.move is Move.SUBTASK_DONE and all(s.status is TaskStatus.COMPLETED or s.uuid == sub.uuid for s in subs):
        return move(conn, wf, task, stage.pathways[0], rule, Action.SUBMIT, actor, req.run_id)
    return task
