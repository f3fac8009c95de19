"""Execute one transition of the table in :mod:`common.transitions` on the database.

Everything here runs inside the caller's transaction: the task row is updated
with an optimistic version check, the event is appended, consensus subtasks and
label rows follow. A concurrent change makes the update miss and raises
:class:`ConflictError`, so a task is never left half-moved.

The parts live beside this module: the task's rows in :mod:`common.store.task_rows`,
role and certification checks in :mod:`common.store.permissions`, moves between
stages in :mod:`common.store.moves`, label branches in :mod:`common.store.labels`.
Their names that callers import from here are re-exported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, update

from common.enums import Action, StageType, TaskStatus
from common.errors import ConflictError, InvalidInputError, NotFoundError, TransitionNotAllowedError
from common.store.labels import copy_labels
from common.store.moves import MovePlan, enter_stage_rows, move, plan_move
from common.store.permissions import check_certifications, check_on_behalf, check_role
from common.store.records import TaskRecord, now
from common.store.schema import subtasks
from common.store.task_rows import load_subtasks, load_task, record_event, write_task
from common.transitions import Move, Rule, rule_for
from common.workflow_graph import Pathway, Stage, Workflow

# ActionRequest and execute are defined here; the rest are re-exported from their modules.
__all__ = [
    "ActionRequest",
    "MovePlan",
    "copy_labels",
    "enter_stage_rows",
    "execute",
    "load_subtasks",
    "load_task",
    "move",
    "now",
    "plan_move",
    "record_event",
]


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


def execute(conn: Connection, wf: Workflow, req: ActionRequest) -> TaskRecord:
    """Apply ``req`` to its task; return the task as it is afterwards.

    Raises:
        NotFoundError: no such task, subtask, pathway or branch.
        TransitionNotAllowedError: the action does not apply to the task now.
        ForbiddenError: the acting user lacks the role or certification.
        ConflictError: another process changed the task first.
        InvalidInputError: a needed argument (pathway, branch, user) is missing.
    """
    # Locked: a concurrent action on the same task waits here and then sees its new version,
    # instead of checking its own against subtasks or labels the other one changed meanwhile.
    task = load_task(conn, req.task_uuid, lock=True)
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
        check_role(conn, task, stage, rule, req.action, who)
        check_certifications(conn, stage, who)
        actor = req.by or who
    else:
        actor = req.by or task.assignee or ""
        if rule.roles is not None and not actor:
            raise InvalidInputError(f"{req.action.value} needs the acting user: pass by=EMAIL (--by EMAIL)")
        check_role(conn, task, stage, rule, req.action, actor)
        if stage.type is not StageType.AGENT:
            check_on_behalf(conn, task, stage, rule, req.action, actor, task.assignee)
    if rule.move is Move.STAY:
        assert rule.status is not None
        values: dict[str, Any] = {"status": rule.status.value, "last_actioned_by": actor or None}
        if rule.sets_assignee:
            values["assignee"] = req.assignee or req.by
        if rule.clears_assignee:
            values["assignee"] = None
        write_task(conn, task, values)
        _record_in_stage(conn, task, req, stage, actor, task.status.value, rule.status.value)
        return load_task(conn, task.uuid)
    if stage.type is StageType.CONSENSUS_REVIEW and req.action is Action.APPROVE:
        _choose_branch(conn, task, req)
    pathway = _destination(wf, stage, rule, req)
    return move(conn, wf, task, pathway, rule, req.action, actor, req.run_id)


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
        check_role(conn, task, stage, rule, req.action, who)
        check_certifications(conn, stage, who)
        values["assignee"] = who
        actor = req.by or who
    else:
        actor = req.by or sub.assignee or ""
        check_role(conn, task, stage, rule, req.action, actor)
        check_on_behalf(conn, task, stage, rule, req.action, actor, sub.assignee)
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
    write_task(conn, task, {"last_actioned_by": actor or None})
    task = load_task(conn, task.uuid)
    detail = {"subtask": sub.uuid, "branch": sub.label_branch}
    _record_in_stage(conn, task, req, stage, actor, sub.status.value, values["status"], detail)
    if rule.move is Move.SUBTASK_DONE and all(s.status is TaskStatus.COMPLETED or s.uuid == sub.uuid for s in subs):
        return move(conn, wf, task, stage.pathways[0], rule, Action.SUBMIT, actor, req.run_id)
    return task
