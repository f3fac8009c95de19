"""``project@version`` as the input of a run: resolve it, and read the data as it was then."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from common.errors import InvalidInputError, NotFoundError
from common.lineage import NodeKind, Ref
from common.store import ProjectRecord, Store
from common.versions.content import TaskState
from common.versions.snapshot import VersionRecord, chain_ids, find_version, iter_version_labels, iter_version_tasks
from common.versions.snapshot import list_versions as _list

__all__ = ["RunInput", "list_versions", "parse_ref", "resolve_input", "resolve_target"]


class RunInput(BaseModel):
    """A project, or one saved version of it, that a run reads."""

    model_config = ConfigDict(frozen=True)

    project: ProjectRecord
    version: VersionRecord | None = None

    @property
    def ref(self) -> Ref:
        """The lineage node of this input (pass it to ``record_run_lineage(inputs=...)``)."""
        if self.version is None:
            return Ref(kind=NodeKind.PROJECT, key=self.project.id)
        return Ref(kind=NodeKind.PROJECT_VERSION, key=f"{self.project.id}@{self.version.number}")

    def iter_tasks(self, store: Store) -> Iterator[TaskState]:
        """The task states of the version (or of the project now, when no version was named)."""
        if self.version is None:
            for t in store.iter_tasks(self.project.id):
                yield TaskState(t.data_hash, t.stage_uuid, t.status.value, t.assignee, t.priority, t.label_branch)
            return
        with store.read() as conn:
            for page in iter_version_tasks(conn, chain_ids(conn, self.version)):
                yield from page

    def iter_labels(self, store: Store) -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
        """(data hash, branch, objects) of every label row of the version."""
        if self.version is None:
            for t in store.iter_tasks(self.project.id):
                row = store.get_label_row(self.project.id, t.data_hash, t.label_branch)
                if row.version:
                    yield t.data_hash, t.label_branch, row.objects
            return
        with store.read() as conn:
            for page in iter_version_labels(conn, chain_ids(conn, self.version)):
                for data_hash, branch, _, objects in page:
                    yield data_hash, branch, objects or []


def parse_ref(text: str) -> tuple[str, int | Literal["latest"] | None]:
    """Split ``NAME``, ``NAME@N`` or ``NAME@latest`` into the project and the version named (None: none).

    Raises:
        InvalidInputError: no project before '@', or the text after it is not a number or 'latest'.
    """
    name, at, number = text.strip().rpartition("@") if "@" in text else (text.strip(), "", "")
    name = name.strip()
    if not at:
        return name, None
    if not name or not (number == "latest" or (number.isdigit() and int(number) >= 1)):
        raise InvalidInputError(
            f"{text!r}: write PROJECT@N (N a version number, 1 or more) or PROJECT@latest, "
            "e.g. 'orchard@3'; 'annoflow version list --project PROJECT' lists them"
        )
    return name, "latest" if number == "latest" else int(number)


def resolve_input(store: Store, text: str) -> RunInput:
    """Resolve ``NAME``, ``NAME@N`` or ``NAME@latest`` (a project id works for NAME).

    Raises:
        InvalidInputError: the text after '@' is not a number or 'latest'.
        NotFoundError: no such project, or it has no such version.
    """
    name, number = parse_ref(text)
    project = store.get_project(name)
    if number is None:
        return RunInput(project=project)
    with store.read() as conn:
        if number == "latest":
            versions = _list(conn, project.id)
            if not versions:
                raise NotFoundError(f"project {project.name!r} has no version yet; 'annoflow version create' makes one")
            return RunInput(project=project, version=versions[-1])
        return RunInput(project=project, version=find_version(conn, project.id, number, project.name))


def resolve_target(store: Store, text: str, what: str) -> ProjectRecord:
    """The live project that ``what`` (a command that writes labels) works on; a saved version is refused.

    A saved version is read-only: it is the input of runs and exports, never written. ``P@N``
    is resolved first, so a malformed reference or an unknown version says so; a version
    that exists is refused with the ways to go on.

    Raises:
        InvalidInputError: ``text`` names a saved version, or is malformed.
        NotFoundError: no such project, or no such version.
    """
    found = resolve_input(store, text)
    if found.version is None:
        return found.project
    name, n = found.project.name, found.version.number
    raise InvalidInputError(
        f"{text.strip()!r} is saved version {n} of {name!r}, which is read-only, and {what} writes labels "
        f"into the tasks it runs on: run it on the project as it is now (--project {name}), or restore "
        f"the version as a new project and run on that ('annoflow version restore --project {name} "
        f"--version {n} --as {name}-v{n}', then --project {name}-v{n})"
    )


def list_versions(store: Store, project: str) -> list[VersionRecord]:
    """The versions of ``project`` (name or id), oldest first.

    Raises:
        NotFoundError: no such project.
    """
    proj = store.get_project(project)
    with store.read() as conn:
        return _list(conn, proj.id)
