"""The one table of task transitions: which action applies where, and what it does.

Every action a person or an agent takes on a task is looked up here by the type
of the task's stage. The store executes the rule; nothing else decides whether a
transition is allowed.

For ``consensus_annotation`` stages the rules apply to the *subtasks* (one per
annotator): the parent task cannot be assigned or submitted itself, and moves
on when all its subtasks are submitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from common.enums import ANNOTATING_ROLES, REVIEWING_ROLES, Action, Role, StageType, TaskStatus
from common.errors import TransitionNotAllowedError

__all__ = ["TRANSITIONS", "Move", "Rule", "arrival_status", "rule_for"]

S = TaskStatus
_OPEN = frozenset({S.NEW, S.ASSIGNED, S.RELEASED, S.SKIPPED, S.REOPENED})
_REVIEW_OPEN = frozenset({S.NEW, S.ASSIGNED, S.RELEASED, S.REOPENED})
_HELD = frozenset({S.ASSIGNED})
_MANAGERS = frozenset({Role.TEAM_MANAGER, Role.ADMIN})


class Move(str, Enum):
    """Where a rule sends the task."""

    STAY = "stay"  # same stage, new status
    SINGLE = "single"  # the stage's only pathway
    NAMED = "named"  # the pathway named by the rule ("approve", "reject")
    CHOSEN = "chosen"  # the pathway the caller picks (agents)
    START = "start"  # the workflow's start stage (reopen)
    SUBTASK_DONE = "subtask_done"  # consensus subtask finished; parent may move


@dataclass(frozen=True)
class Rule:
    """One row of the table."""

    allowed_from: frozenset[TaskStatus]
    move: Move
    status: TaskStatus | None = None  # new status when the task stays
    pathway: str | None = None  # pathway name for Move.NAMED
    roles: frozenset[Role] | None = None  # roles the acting user needs; None: no person acts
    arrive_as: TaskStatus = S.NEW  # status at the destination stage
    sets_assignee: bool = False
    clears_assignee: bool = False


_A, _R = ANNOTATING_ROLES, REVIEWING_ROLES
T = StageType

TRANSITIONS: dict[tuple[StageType, Action], Rule] = {
    (T.ANNOTATION, Action.ASSIGN): Rule(_OPEN, Move.STAY, S.ASSIGNED, roles=_A, sets_assignee=True),
    (T.ANNOTATION, Action.RELEASE): Rule(_HELD, Move.STAY, S.RELEASED, clears_assignee=True),
    (T.ANNOTATION, Action.SKIP): Rule(_OPEN - {S.SKIPPED}, Move.STAY, S.SKIPPED, roles=_A, clears_assignee=True),
    (T.ANNOTATION, Action.SUBMIT): Rule(_HELD, Move.SINGLE, roles=_A),
    (T.REVIEW, Action.ASSIGN): Rule(_REVIEW_OPEN, Move.STAY, S.ASSIGNED, roles=_R, sets_assignee=True),
    (T.REVIEW, Action.RELEASE): Rule(_HELD, Move.STAY, S.RELEASED, clears_assignee=True),
    (T.REVIEW, Action.APPROVE): Rule(_HELD, Move.NAMED, pathway="approve", roles=_R),
    (T.REVIEW, Action.REJECT): Rule(_HELD, Move.NAMED, pathway="reject", roles=_R, arrive_as=S.REOPENED),
    # Consensus annotation: these rules act on subtasks.
    (T.CONSENSUS_ANNOTATION, Action.ASSIGN): Rule(_OPEN, Move.STAY, S.ASSIGNED, roles=_A, sets_assignee=True),
    (T.CONSENSUS_ANNOTATION, Action.RELEASE): Rule(_HELD, Move.STAY, S.RELEASED, clears_assignee=True),
    (T.CONSENSUS_ANNOTATION, Action.SUBMIT): Rule(_HELD, Move.SUBTASK_DONE, S.COMPLETED, roles=_A),
    (T.CONSENSUS_REVIEW, Action.ASSIGN): Rule(_REVIEW_OPEN, Move.STAY, S.ASSIGNED, roles=_R, sets_assignee=True),
    (T.CONSENSUS_REVIEW, Action.RELEASE): Rule(_HELD, Move.STAY, S.RELEASED, clears_assignee=True),
    (T.CONSENSUS_REVIEW, Action.APPROVE): Rule(_HELD, Move.NAMED, pathway="approve", roles=_R),
    (T.CONSENSUS_REVIEW, Action.REJECT): Rule(_HELD, Move.NAMED, pathway="reject", roles=_R, arrive_as=S.REOPENED),
    (T.AGENT, Action.PROCEED): Rule(_OPEN, Move.CHOSEN),
    (T.COMPLETE, Action.REOPEN): Rule(frozenset({S.COMPLETED}), Move.START, roles=_MANAGERS, arrive_as=S.REOPENED),
    (T.ARCHIVE, Action.REOPEN): Rule(frozenset({S.COMPLETED}), Move.START, roles=_MANAGERS, arrive_as=S.REOPENED),
}


def rule_for(stage_type: StageType, action: Action, status: TaskStatus, stage_title: str) -> Rule:
    """Return the rule for ``action`` on a task of ``status`` in a stage of ``stage_type``.

    Raises:
        TransitionNotAllowedError: the action does not apply there; the message
            lists the actions that do.
    """
    rule = TRANSITIONS.get((stage_type, action))
    if rule is None:
        valid = sorted(a.value for (t, a) in TRANSITIONS if t is stage_type)
        raise TransitionNotAllowedError(
            f"'{action.value}' is not an action of {stage_type.value} stage '{stage_title}'; "
            f"its actions are: {', '.join(valid) or 'none'}"
        )
    if status not in rule.allowed_from:
        allowed = ", ".join(sorted(s.value for s in rule.allowed_from))
        raise TransitionNotAllowedError(
            f"cannot {action.value} a {status.value} task in stage '{stage_title}'; "
            f"{action.value} applies to tasks that are {allowed}"
            + (" (assign it first)" if rule.allowed_from == _HELD else "")
        )
    return rule


def arrival_status(destination: StageType, rule: Rule) -> TaskStatus:
    """The status a task has when it arrives in a stage of type ``destination``."""
    if destination.is_final:
        return S.COMPLETED
    return rule.arrive_as
