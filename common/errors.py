"""The one exception hierarchy of annoflow.

Every error raised on purpose derives from :class:`AnnoflowError`. The branches
say what the caller should do about it:

* :class:`InvalidInputError`: the user fixes the input (file, parameter, name).
* :class:`NotFoundError`: the named thing does not exist; check the name.
* :class:`TransitionNotAllowedError`: the action does not apply to the task now.
* :class:`ForbiddenError`: the user lacks the role or certification.
* :class:`ConflictError`: someone else changed the task first; re-read and retry.
* :class:`TransientError`: infrastructure hiccup; retrying later may succeed.
"""

from __future__ import annotations

__all__ = [
    "AnnoflowError",
    "ConflictError",
    "ForbiddenError",
    "InvalidInputError",
    "InvalidParametersError",
    "NotFoundError",
    "TransientError",
    "TransitionNotAllowedError",
    "WorkflowDefinitionError",
]


class AnnoflowError(Exception):
    """Root of every error annoflow raises on purpose."""


class InvalidInputError(AnnoflowError, ValueError):
    """The input is wrong; the message says what and how to fix it."""


class WorkflowDefinitionError(InvalidInputError):
    """A workflow file is invalid; the message names file, stage and problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: invalid workflow ({len(problems)} problem(s)):\n{listing}")


class InvalidParametersError(InvalidInputError):
    """A parameter set (e.g. a ToTask run's) is invalid; ``problems`` lists every bad field at once."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: invalid parameters ({len(problems)} problem(s)):\n{listing}")


class NotFoundError(AnnoflowError, LookupError):
    """A project, stage, task, user or run with that name or id does not exist."""


class TransitionNotAllowedError(AnnoflowError):
    """The action is not allowed for the task's stage and status."""


class ForbiddenError(AnnoflowError):
    """The acting user lacks the project role or certification the action needs."""


class ConflictError(AnnoflowError):
    """Another process changed the task first; re-read it and decide again."""


class TransientError(AnnoflowError):
    """A server or connection failed in a way that may pass; retry later."""
