"""Users, their role on each project and their certifications.

A user is known by email. A role is per project (one each, replaced when set
again) and decides which actions the user may take there; certifications are
global and decide which stages the user may be assigned in.
"""

from __future__ import annotations

from sqlalchemy import insert, select, update

from common.enums import Role
from common.errors import InvalidInputError
from common.store.connections import StoreBase
from common.store.records import UserRecord, now
from common.store.schema import certifications, memberships, users

__all__ = ["UsersMixin"]


class UsersMixin(StoreBase):
    """The users part of :class:`common.store.Store`."""

    def add_user(self, email: str, name: str = "") -> None:
        """Add a user (no-op if the email is known)."""
        if "@" not in email:
            raise InvalidInputError(f"{email!r} is not an email address")
        with self.write() as conn:
            if conn.execute(select(users.c.email).where(users.c.email == email)).first() is None:
                conn.execute(insert(users).values(email=email, name=name, created_at=now()))

    def set_role(self, project_id: str, email: str, role: Role | str) -> None:
        """Give ``email`` a role on the project (replacing any other)."""
        try:
            role = Role(role)
        except ValueError as e:
            raise InvalidInputError(f"unknown role {role!r}; roles: {', '.join(r.value for r in Role)}") from e
        self.add_user(email)
        with self.write() as conn:
            done = conn.execute(
                update(memberships)
                .where(memberships.c.project_id == project_id, memberships.c.email == email)
                .values(role=role.value)
            )
            if done.rowcount == 0:
                conn.execute(insert(memberships).values(project_id=project_id, email=email, role=role.value))

    def certify(self, email: str, name: str) -> None:
        """Grant a certification to a user."""
        self.add_user(email)
        with self.write() as conn:
            held = conn.execute(
                select(certifications).where(certifications.c.email == email, certifications.c.name == name)
            ).first()
            if held is None:
                conn.execute(insert(certifications).values(email=email, name=name))

    def list_users(self, project_id: str) -> list[UserRecord]:
        with self.read() as conn:
            rows = conn.execute(
                select(users.c.email, users.c.name, memberships.c.role)
                .join(memberships, memberships.c.email == users.c.email)
                .where(memberships.c.project_id == project_id)
                .order_by(users.c.email)
            ).all()
            certs: dict[str, list[str]] = {}
            for email, cert in conn.execute(select(certifications.c.email, certifications.c.name)):
                certs.setdefault(email, []).append(cert)
        return [
            UserRecord(email=e, name=n, role=Role(r), certifications=tuple(sorted(certs.get(e, []))))
            for e, n, r in rows
        ]
