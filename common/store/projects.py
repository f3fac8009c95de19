"""Projects and their workflow versions.

A project runs one workflow, stored as numbered version rows; the project names
its current version (a new project starts at 1). :meth:`ProjectsMixin.workflow`
parses a version once per store object and keeps it, since every action and
import needs it.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from common.errors import InvalidInputError, NotFoundError
from common.store.connections import StoreBase
from common.store.records import ProjectRecord, now
from common.store.schema import projects, workflow_versions
from common.workflow import parse_workflow
from common.workflow_graph import Workflow

__all__ = ["ProjectsMixin"]


class ProjectsMixin(StoreBase):
    """The projects part of :class:`common.store.Store`."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._workflows: dict[tuple[str, int], Workflow] = {}

    def create_project(self, name: str, workflow: Workflow, description: str = "") -> ProjectRecord:
        """Create a project running ``workflow``.

        Raises:
            InvalidInputError: the name is blank or taken.
        """
        if not name.strip():
            raise InvalidInputError("a project needs a non-blank name (--name NAME)")
        pid = str(uuid.uuid4())
        at = now()
        try:
            with self.write() as conn:
                conn.execute(
                    insert(projects).values(
                        id=pid, name=name, description=description, workflow_version=1, created_at=at
                    )
                )
                conn.execute(
                    insert(workflow_versions).values(
                        project_id=pid, version=1, definition=workflow.to_dict(), created_at=at
                    )
                )
        except IntegrityError as e:
            raise InvalidInputError(f"a project named {name!r} exists already; pick another --name") from e
        return self.get_project(pid)

    def get_project(self, name_or_id: str) -> ProjectRecord:
        """Raises: NotFoundError: no project with that name or id."""
        with self.read() as conn:
            row = (
                conn.execute(select(projects).where((projects.c.id == name_or_id) | (projects.c.name == name_or_id)))
                .mappings()
                .first()
            )
        if row is None:
            names = ", ".join(p.name for p in self.list_projects()) or "none yet"
            raise NotFoundError(f"no project {name_or_id!r}; projects: {names} ('annoflow project create')")
        return ProjectRecord.model_validate(dict(row))

    def list_projects(self) -> list[ProjectRecord]:
        with self.read() as conn:
            rows = conn.execute(select(projects).order_by(projects.c.created_at)).mappings()
            return [ProjectRecord.model_validate(dict(r)) for r in rows]

    def workflow(self, project_id: str, version: int | None = None) -> Workflow:
        """The project's workflow (the current version unless ``version`` is given)."""
        if version is None:
            version = self.get_project(project_id).workflow_version
        key = (project_id, version)
        if key not in self._workflows:
            with self.read() as conn:
                definition = conn.execute(
                    select(workflow_versions.c.definition).where(
                        workflow_versions.c.project_id == project_id, workflow_versions.c.version == version
                    )
                ).scalar_one()
            self._workflows[key] = parse_workflow(definition, f"project {project_id} workflow v{version}")
        return self._workflows[key]
