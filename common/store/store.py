"""The store: one API over SQLite or PostgreSQL for projects, data, users, tasks, labels and runs."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from common.enums import Action, Role, StageType, TaskStatus
from common.errors import ConflictError, InvalidInputError, NotFoundError, TransientError
from common.store import lifecycle
from common.store.engine import is_sqlite, make_engine, migrate
from common.store.filters import compile_filters
from common.store.importing import IMPORT_BATCH, Placed, collector_per_batch, insert_units, ordered_uuids
from common.store.lifecycle import ActionRequest, now
from common.store.records import (
    DataUnit,
    EventRecord,
    LabelRow,
    ProjectRecord,
    RunRecord,
    SubtaskRecord,
    TaskRecord,
    UserRecord,
)
from common.store.schema import (
    certifications,
    data_units,
    datasets,
    events,
    label_rows,
    memberships,
    projects,
    runs,
    subtasks,
    tasks,
    users,
    workflow_versions,
)
from common.workflow import Workflow, parse_workflow

__all__ = ["Store"]


class Store:
    """Everything annoflow keeps, behind one object.

    Open it with :meth:`Store.open`; it creates or upgrades the schema.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._workflows: dict[tuple[str, int], Workflow] = {}

    @classmethod
    def open(cls, url: str, schema: str | None = None, upgrade: bool = True) -> Store:
        """Connect to the store at ``url`` and bring its schema up to date.

        Raises:
            InvalidInputError: the URL is malformed.
            TransientError: the database cannot be reached.
        """
        engine = make_engine(url, schema)
        if upgrade:
            migrate(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------ connections
    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction.

        Raises:
            TransientError: the database cannot be reached (or is locked, or full).
        """
        with _unavailable_is_transient(self), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (SQLite: takes the write lock at BEGIN).

        Raises:
            TransientError: the database cannot be reached (or is locked, or full);
                nothing was written.
        """
        with _unavailable_is_transient(self), self.engine.connect() as conn:
            conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                yield conn

    # --------------------------------------------------------------- projects
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

    # ------------------------------------------------------------------- data
    def dataset(self, project_id: str, name: str) -> str:
        """Return the id of the project's dataset ``name``, creating it if needed."""
        with self.write() as conn:
            found = conn.execute(
                select(datasets.c.id).where(datasets.c.project_id == project_id, datasets.c.name == name)
            ).scalar()
            if found:
                return str(found)
            did = str(uuid.uuid4())
            conn.execute(insert(datasets).values(id=did, project_id=project_id, name=name, created_at=now()))
            return did

    def add_data_units(
        self, project_id: str, dataset_id: str, units: Iterable[DataUnit], batch_size: int = IMPORT_BATCH
    ) -> int:
        """Import data units and create one task each in the workflow's start stage.

        Streams ``units`` in batches (one transaction each), so a million units
        never sit in memory at once. Returns the number imported.

        Raises:
            InvalidInputError: a data hash is already imported in this project.
        """
        wf = self.workflow(project_id)
        count = 0
        batch: list[DataUnit] = []
        with collector_per_batch() as batch_done:
            for unit in units:
                batch.append(unit)
                if len(batch) >= batch_size:
                    count += self._import_batch(wf, project_id, dataset_id, batch)
                    batch = []
                    batch_done()
            if batch:
                count += self._import_batch(wf, project_id, dataset_id, batch)
        return count

    def _import_batch(self, wf: Workflow, project_id: str, dataset_id: str, batch: list[DataUnit]) -> int:
        at = now()
        # Without a router at the start every unit lands in the same stage: resolve it once.
        fixed = None if wf.start.type.is_router else wf.resolve(wf.start_uuid, "", None)[0]
        consensus = fixed is None or fixed.type is StageType.CONSENSUS_ANNOTATION
        placed: list[Placed] = []
        sub_rows: list[dict[str, Any]] = []
        # Tasks keep the input's order (listings show them so) with ascending uuids.
        for u, tid in zip(batch, ordered_uuids(len(batch)), strict=True):
            stage = fixed or wf.resolve(wf.start_uuid, u.data_hash, None)[0]
            status = TaskStatus.COMPLETED if stage.type.is_final else TaskStatus.NEW
            placed.append((u, tid, stage.uuid, status.value))
            if consensus:
                sub_rows.extend(lifecycle.enter_stage_rows(stage, tid, status))
        try:
            with self.write() as conn:
                insert_units(conn, project_id, dataset_id, at, placed)
                if sub_rows:
                    conn.execute(insert(subtasks), sub_rows)
        except IntegrityError as e:
            raise InvalidInputError(
                f"a data unit in this batch (first: {batch[0].title!r}) is already imported; data hashes must be unique"
            ) from e
        return len(batch)

    def get_data_units(self, hashes: Iterable[str]) -> dict[str, DataUnit]:
        """The data units with these hashes, by hash (missing ones are left out)."""
        wanted = list(hashes)
        with self.read() as conn:
            rows = conn.execute(select(data_units).where(data_units.c.data_hash.in_(wanted))).mappings()
            return {r["data_hash"]: DataUnit.model_validate(dict(r)) for r in rows}

    # ------------------------------------------------------------------ users
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

    # ------------------------------------------------------------------ tasks
    def iter_tasks(
        self,
        project_id: str,
        stage_uuid: str | None = None,
        filters: Mapping[str, Any] | None = None,
        page_size: int = 1000,
    ) -> Iterator[TaskRecord]:
        """Yield matching tasks lazily, one keyset page at a time, in task order.

        Raises:
            InvalidInputError: a filter names an unknown field or lookup.
        """
        where, limit = compile_filters(filters)
        after = 0
        left = limit
        while left is None or left > 0:
            size = page_size if left is None else min(page_size, left)
            page = self.tasks_page(project_id, stage_uuid, where, after, size)
            yield from page
            if len(page) < size:
                return
            after = page[-1].id
            if left is not None:
                left -= len(page)

    def tasks_page(
        self, project_id: str, stage_uuid: str | None, where: Any, after_id: int, size: int
    ) -> list[TaskRecord]:
        """One page of tasks with ``id > after_id`` (keyset pagination)."""
        query = select(tasks).where(tasks.c.project_id == project_id, tasks.c.id > after_id, where)
        if stage_uuid is not None:
            query = query.where(tasks.c.stage_uuid == stage_uuid)
        with self.read() as conn:
            rows = conn.execute(query.order_by(tasks.c.id).limit(size)).mappings().all()
        return [TaskRecord.model_validate(dict(r)) for r in rows]

    def get_task(self, task_uuid: str) -> TaskRecord:
        """Raises: NotFoundError: no such task."""
        with self.read() as conn:
            return lifecycle.load_task(conn, task_uuid)

    def subtasks(self, task_uuid: str) -> list[SubtaskRecord]:
        with self.read() as conn:
            return lifecycle.load_subtasks(conn, task_uuid)

    def counts(self, project_id: str) -> dict[str, dict[str, int]]:
        """Task counts by stage UUID and status."""
        out: dict[str, dict[str, int]] = {}
        with self.read() as conn:
            rows = conn.execute(
                select(tasks.c.stage_uuid, tasks.c.status, func.count())
                .where(tasks.c.project_id == project_id)
                .group_by(tasks.c.stage_uuid, tasks.c.status)
            )
            for stage, status, n in rows:
                out.setdefault(stage, {})[status] = n
        return out

    def act(self, request: ActionRequest) -> TaskRecord:
        """Apply one action of the transition table, atomically.

        Raises:
            NotFoundError, TransitionNotAllowedError, ForbiddenError, ConflictError,
            InvalidInputError: see :func:`common.store.lifecycle.execute`.
        """
        task = self.get_task(request.task_uuid)
        wf = self.workflow(task.project_id)
        try:
            with self.write() as conn:
                return lifecycle.execute(conn, wf, request)
        except IntegrityError as e:
            raise ConflictError(f"task {request.task_uuid} changed concurrently; read it again") from e

    def assign(self, task_uuid: str, email: str, **kw: Any) -> TaskRecord:
        return self.act(ActionRequest(task_uuid, Action.ASSIGN, assignee=email, **kw))

    # ----------------------------------------------------------------- labels
    def get_label_row(self, project_id: str, data_hash: str, branch: str = "main") -> LabelRow:
        """The label row of one data unit and branch (empty, version 0, if none yet)."""
        with self.read() as conn:
            row = (
                conn.execute(
                    select(label_rows).where(
                        label_rows.c.project_id == project_id,
                        label_rows.c.data_hash == data_hash,
                        label_rows.c.branch == branch,
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            return LabelRow(project_id=project_id, data_hash=data_hash, branch=branch, objects=[], version=0)
        return LabelRow.model_validate(dict(row))

    def save_label_row(self, row: LabelRow) -> LabelRow:
        """Save ``row``'s objects if nobody saved since it was read (its version).

        Raises:
            ConflictError: the row was saved by someone else meanwhile.
        """
        with self.write() as conn:
            return save_label_row(conn, row)

    # ----------------------------------------------------------------- events
    def events(self, project_id: str, task_uuid: str | None = None) -> list[EventRecord]:
        query = select(events).where(events.c.project_id == project_id)
        if task_uuid is not None:
            query = query.where(events.c.task_uuid == task_uuid)
        with self.read() as conn:
            return [EventRecord.model_validate(dict(r)) for r in conn.execute(query.order_by(events.c.id)).mappings()]

    # ------------------------------------------------------------------- runs
    def create_run(self, project_id: str | None, kind: str, name: str, params: dict[str, Any]) -> RunRecord:
        rid = str(uuid.uuid4())
        at = now()
        with self.write() as conn:
            conn.execute(
                insert(runs).values(
                    id=rid,
                    project_id=project_id,
                    kind=kind,
                    name=name,
                    status="RUNNING",
                    message="",
                    params=params,
                    metrics={},
                    created_at=at,
                    updated_at=at,
                )
            )
        return self.get_run(rid)

    def update_run(self, run_id: str, **values: Any) -> None:
        with self.write() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(updated_at=now(), **values))

    def get_run(self, run_id: str) -> RunRecord:
        """Raises: NotFoundError: no run with that id (or unique id prefix) or name."""
        with self.read() as conn:
            rows = (
                conn.execute(select(runs).where(runs.c.id.startswith(run_id) | (runs.c.name == run_id)).limit(2))
                .mappings()
                .all()
            )
        if len(rows) != 1:
            what = "is ambiguous" if rows else "matches no run"
            raise NotFoundError(f"{run_id!r} {what}; list runs with 'annoflow runs list'")
        return RunRecord.model_validate(dict(rows[0]))

    def list_runs(self, project_id: str | None = None) -> list[RunRecord]:
        query = select(runs).order_by(runs.c.created_at.desc())
        if project_id is not None:
            query = query.where(runs.c.project_id == project_id)
        with self.read() as conn:
            return [RunRecord.model_validate(dict(r)) for r in conn.execute(query).mappings()]

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.engine)


def save_label_row(conn: Connection, row: LabelRow) -> LabelRow:
    """Write a label row inside an open transaction, checking its version."""
    at = now()
    if row.version == 0:
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(label_rows).values(
                        project_id=row.project_id,
                        data_hash=row.data_hash,
                        branch=row.branch,
                        objects=row.objects,
                        version=1,
                        updated_at=at,
                    )
                )
        except IntegrityError as e:
            raise ConflictError(f"label row of {row.data_hash}/{row.branch} was created meanwhile; re-read it") from e
        return row.model_copy(update={"version": 1})
    done = conn.execute(
        update(label_rows)
        .where(
            label_rows.c.project_id == row.project_id,
            label_rows.c.data_hash == row.data_hash,
            label_rows.c.branch == row.branch,
            label_rows.c.version == row.version,
        )
        .values(objects=row.objects, version=row.version + 1, updated_at=at)
    )
    if done.rowcount != 1:
        raise ConflictError(f"label row of {row.data_hash}/{row.branch} was saved by someone else; re-read it")
    return row.model_copy(update={"version": row.version + 1})


@contextmanager
def _unavailable_is_transient(store: Store) -> Iterator[None]:
    """Turn the driver's "cannot reach / cannot write now" errors into :class:`TransientError`.

    A lost PostgreSQL connection, a locked or full SQLite file: retrying later may
    succeed, so callers (the result applier) retry or put the work back instead of
    treating it as bad data. Statements sent straight to the SQLite driver raise
    ``sqlite3.OperationalError`` rather than SQLAlchemy's wrapper; both count.
    """
    try:
        yield
    except (OperationalError, sqlite3.OperationalError) as e:
        raise TransientError(
            f"the store at {store.engine.url!r} is unavailable ({e}); retry once it is reachable"
        ) from e
