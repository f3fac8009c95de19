"""Who may act on a task: project roles, certifications, acting on work someone else holds.

The roles an action needs come from its rule in :mod:`common.transitions`; these
checks read the acting user's membership and certifications inside the caller's
transaction and raise :class:`ForbiddenError` with what is missing and how to grant it.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from common.enums import Action, Role
from common.errors import ForbiddenError
from common.store.records import TaskRecord
from common.store.schema import certifications, memberships
from common.transitions import Rule
from common.workflow_graph import Stage

__all__ = ["check_certifications", "check_on_behalf", "check_role", "role_of"]

# Who may act on a task another user holds (submit or release it for them).
_MANAGERS = frozenset({Role.TEAM_MANAGER, Role.ADMIN})


def role_of(conn: Connection, project_id: str, email: str) -> Role | None:
    """The user's role on the project, or None when they are not a member."""
    value = conn.execute(
        select(memberships.c.role).where(memberships.c.project_id == project_id, memberships.c.email == email)
    ).scalar()
    return Role(value) if value else None


def check_role(
    conn: Connection, task: TaskRecord, stage: Stage, rule: Rule, action: Action, who: str, for_whom: str = ""
) -> None:
    """Raises: ForbiddenError: ``who`` lacks every role the rule allows."""
    if rule.roles is None:
        return
    role = role_of(conn, task.project_id, who)
    if role not in rule.roles:
        need = ", ".join(sorted(r.value for r in rule.roles))
        has = role.value if role else "no role on this project"
        what = f"be the user {for_whom} acts for" if for_whom else action.value
        raise ForbiddenError(
            f"{who} cannot {what} in {stage.type.value} stage '{stage.title}': "
            f"they have {has}; it needs one of: {need} ('annoflow users add {who} --project ... --role ...')"
        )


def check_on_behalf(
    conn: Connection, task: TaskRecord, stage: Stage, rule: Rule, action: Action, actor: str, holder: str | None
) -> None:
    """Acting on work someone else holds: they must have the role, and the actor must manage the project."""
    if not holder or not actor or holder == actor:
        return
    # "Submitted on behalf of" users with the stage's roles: the holder's role counts too.
    check_role(conn, task, stage, rule, action, holder, for_whom=actor)
    if role_of(conn, task.project_id, actor) not in _MANAGERS:
        raise ForbiddenError(
            f"{actor} cannot {action.value} work that {holder} holds in stage '{stage.title}': only the assignee, "
            f"a team_manager or an admin can; leave out --by to act as {holder}, or assign it to {actor} first"
        )


def check_certifications(conn: Connection, stage: Stage, who: str) -> None:
    """Raises: ForbiddenError: ``who`` lacks a certification the stage requires."""
    if not stage.certifications:
        return
    held = set(conn.execute(select(certifications.c.name).where(certifications.c.email == who)).scalars())
    missing = [c for c in stage.certifications if c not in held]
    if missing:
        raise ForbiddenError(
            f"{who} cannot be assigned in stage '{stage.title}': missing certification(s) "
            f"{', '.join(missing)}; grant them with 'annoflow users certify {who} NAME'"
        )
