"""The string enums shared by every part of annoflow."""

from __future__ import annotations

from enum import Enum

__all__ = ["ANNOTATING_ROLES", "REVIEWING_ROLES", "Action", "Role", "StageType", "TaskStatus"]


class StageType(str, Enum):
    """The kinds of workflow stage."""

    ANNOTATION = "annotation"  # people draw labels
    REVIEW = "review"  # people approve or reject labels
    CONSENSUS_ANNOTATION = "consensus_annotation"  # several annotators label the same item
    CONSENSUS_REVIEW = "consensus_review"  # a reviewer picks the winning branch
    AGENT = "agent"  # code decides the pathway (producer -> workers -> applier)
    PERCENTAGE_ROUTER = "percentage_router"  # splits tasks by a hash of the data unit
    USER_ROUTER = "user_router"  # splits tasks by who last acted on them
    COMPLETE = "complete"  # final: done
    ARCHIVE = "archive"  # final: set aside

    @property
    def is_router(self) -> bool:
        return self in (StageType.PERCENTAGE_ROUTER, StageType.USER_ROUTER)

    @property
    def is_final(self) -> bool:
        return self in (StageType.COMPLETE, StageType.ARCHIVE)


class TaskStatus(str, Enum):
    """Where a task stands inside its stage."""

    NEW = "NEW"  # arrived, nobody holds it
    ASSIGNED = "ASSIGNED"  # a user holds it
    RELEASED = "RELEASED"  # a user gave it back
    SKIPPED = "SKIPPED"  # an annotator passed on it
    REOPENED = "REOPENED"  # sent back by a reject or a reopen
    COMPLETED = "COMPLETED"  # in a final stage, or a submitted consensus subtask


class Action(str, Enum):
    """What a user or agent can do to a task."""

    ASSIGN = "assign"
    RELEASE = "release"
    SUBMIT = "submit"
    SKIP = "skip"
    APPROVE = "approve"
    REJECT = "reject"
    PROCEED = "proceed"
    REOPEN = "reopen"


class Role(str, Enum):
    """A user's role on one project."""

    ANNOTATOR = "annotator"
    REVIEWER = "reviewer"
    ANNOTATOR_REVIEWER = "annotator_reviewer"
    TEAM_MANAGER = "team_manager"
    ADMIN = "admin"


# Roles allowed to work on (or act on behalf of someone in) annotation tasks.
ANNOTATING_ROLES = frozenset({Role.ANNOTATOR, Role.ANNOTATOR_REVIEWER, Role.TEAM_MANAGER, Role.ADMIN})
# Roles allowed to work on review tasks.
REVIEWING_ROLES = frozenset({Role.REVIEWER, Role.ANNOTATOR_REVIEWER, Role.TEAM_MANAGER, Role.ADMIN})
