"""Turn what a caller names (``apples@2``, ``model:/w/yolo.pt``, a task UUID) into node rows.

Names are resolved against the store once, at record time: a project is kept
by id (renaming it keeps its history), a version as ``<project id>@<number>``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from sqlalchemy import Connection, func, or_, select

from common.errors import InvalidInputError, NotFoundError
from common.lineage.model import NodeKind, Ref
from common.lineage.repository import CHUNK, NodeRow
from common.store.schema import datasets, project_versions, projects, tasks

__all__ = ["parse_ref", "resolve_refs"]

_PREFIXES = {
    "project": NodeKind.PROJECT,
    "version": NodeKind.PROJECT_VERSION,
    "dataset": NodeKind.DATASET,
    "file": NodeKind.FILE,
    "model": NodeKind.FILE,
    "folder": NodeKind.FOLDER,
    "task": NodeKind.TASK,
    "job": NodeKind.JOB,
    "app": NodeKind.APP,
    "run": NodeKind.RUN,
}


def parse_ref(text: str) -> Ref:
    """Parse ``KIND:KEY`` (``model:PATH`` is a file holding model weights) or ``PROJECT[@VERSION]``.

    Raises:
        InvalidInputError: the text is blank or names an unknown kind.
    """
    text = text.strip()
    if not text:
        raise InvalidInputError("a lineage reference is blank; write e.g. 'apples@2', 'file:/data/a.json'")
    prefix, sep, rest = text.partition(":")
    if sep and prefix in _PREFIXES and rest:
        kind = _PREFIXES[prefix]
        if kind is NodeKind.FILE:
            return Ref.file(rest, model_weight=prefix == "model")
        if kind is NodeKind.PROJECT and "@" in rest:
            kind = NodeKind.PROJECT_VERSION
        return Ref(kind=kind, key=rest)
    if sep and "/" not in prefix and prefix.isalpha() and len(prefix) > 1:
        kinds = ", ".join(sorted(_PREFIXES))
        raise InvalidInputError(f"unknown lineage kind {prefix!r} in {text!r}; use one of {kinds}, or PROJECT@N")
    return Ref(kind=NodeKind.PROJECT_VERSION if "@" in text else NodeKind.PROJECT, key=text)


def _project(conn: Connection, name_or_id: str) -> tuple[str, str]:
    row = conn.execute(
        select(projects.c.id, projects.c.name).where(or_(projects.c.id == name_or_id, projects.c.name == name_or_id))
    ).first()
    if row is None:
        raise NotFoundError(f"lineage: no project {name_or_id!r}; check the name with 'annoflow project list'")
    return str(row[0]), str(row[1])


def _version(conn: Connection, key: str) -> tuple[str, str, int]:
    name, _, number = key.rpartition("@")
    pid, pname = _project(conn, name)
    if number in ("", "latest"):
        latest = conn.execute(
            select(func.max(project_versions.c.number)).where(project_versions.c.project_id == pid)
        ).scalar()
        if latest is None:
            raise NotFoundError(f"project {pname!r} has no version yet; create one with 'annoflow version create'")
        return pid, pname, int(latest)
    if not number.isdigit():
        raise InvalidInputError(f"{key!r}: the version after '@' must be a number or 'latest'")
    found = conn.execute(
        select(project_versions.c.id).where(
            project_versions.c.project_id == pid, project_versions.c.number == int(number)
        )
    ).first()
    if found is None:
        raise NotFoundError(f"project {pname!r} has no version {number}; see 'annoflow version list --project {pname}'")
    return pid, pname, int(number)


def _dataset(conn: Connection, key: str, project_id: str | None) -> tuple[str, str, str]:
    query = select(datasets.c.id, datasets.c.name, datasets.c.project_id).where(datasets.c.id == key)
    row = conn.execute(query).first()
    if row is None and project_id:
        query = select(datasets.c.id, datasets.c.name, datasets.c.project_id).where(
            datasets.c.name == key, datasets.c.project_id == project_id
        )
        row = conn.execute(query).first()
    if row is None:
        raise NotFoundError(f"lineage: no dataset {key!r}; give its id or its name within the run's project")
    return str(row[0]), str(row[1]), str(row[2])


def resolve_refs(conn: Connection, refs: Sequence[Ref | str], run_project: str | None) -> list[NodeRow]:
    """Resolve names to ids and give each node its default label.

    Raises:
        NotFoundError: a named project, version or dataset does not exist.
        InvalidInputError: a reference cannot be parsed.
    """
    out: list[NodeRow] = []
    task_refs: list[Ref] = []
    for item in refs:
        ref = parse_ref(item) if isinstance(item, str) else item
        settings = ref.settings.set_fields() if ref.settings else {}
        attrs = dict(ref.attrs)
        key, project_id = ref.key, ref.project_id
        if ref.kind is NodeKind.PROJECT:
            key, name = _project(conn, ref.key)
            project_id, attrs["label"] = key, name
        elif ref.kind is NodeKind.PROJECT_VERSION:
            project_id, name, number = _version(conn, ref.key)
            key = f"{project_id}@{number}"
            attrs |= {"label": f"{name} v{number}", "number": number}
        elif ref.kind is NodeKind.DATASET:
            key, name, project_id = _dataset(conn, ref.key, project_id or run_project)
            attrs["label"] = name
        elif ref.kind in (NodeKind.FILE, NodeKind.FOLDER):
            attrs["label"] = posixpath.basename(ref.key.rstrip("/")) or ref.key
            project_id = project_id or run_project
        elif ref.kind is NodeKind.TASK:
            task_refs.append(ref)
            continue
        else:
            attrs.setdefault("label", ref.key)
            project_id = project_id or run_project
        out.append((ref.kind, key, project_id, settings, attrs))
    out.extend(_resolve_tasks(conn, task_refs, run_project))
    return out


def _resolve_tasks(conn: Connection, refs: list[Ref], run_project: str | None) -> list[NodeRow]:
    # One query per chunk instead of per task: a ToTask run can touch 100,000 tasks.
    known: dict[str, tuple[str, str]] = {}
    keys = [r.key for r in refs]
    for i in range(0, len(keys), CHUNK):
        part = keys[i : i + CHUNK]
        query = select(tasks.c.uuid, tasks.c.project_id, tasks.c.data_title).where(tasks.c.uuid.in_(part))
        known.update({u: (p, t) for u, p, t in conn.execute(query)})
    out: list[NodeRow] = []
    for ref in refs:
        project_id, title = known.get(ref.key, (ref.project_id or run_project, ref.key))
        settings = ref.settings.set_fields() if ref.settings else {}
        out.append((NodeKind.TASK, ref.key, ref.project_id or project_id, settings, ref.attrs | {"label": title}))
    return out
