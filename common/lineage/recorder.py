"""Record what a run read and wrote. Recording never breaks the run: failures are logged.

Pipelines call :func:`record_run_lineage` once per run; a user's own application
uses :class:`Lineage` and its ``add_input_*`` / ``add_output_*`` methods.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from common.errors import NotFoundError
from common.lineage.model import Direction, LineageMeta, NodeKind, Ref
from common.lineage.refs import resolve_refs
from common.lineage.repository import NodeRow, add_edges, upsert_nodes
from common.store import Store
from common.store.schema import runs

__all__ = ["Lineage", "record_lineage", "record_run_lineage"]

logger = logging.getLogger("annoflow.lineage")

# Display settings as a model or as the equivalent dict ({"relation_settings": {...}}).
MetaArg = LineageMeta | dict[str, Any] | None


def _run_row(conn: Connection, run_id: str) -> NodeRow:
    row = conn.execute(
        select(runs.c.id, runs.c.project_id, runs.c.kind, runs.c.name).where(runs.c.id == run_id)
    ).first()
    if row is None:
        raise NotFoundError(f"lineage: no run {run_id!r}; create the run before recording its lineage")
    return (NodeKind.RUN, str(row[0]), row[1], {}, {"label": str(row[3]), "run_kind": str(row[2])})


def record_lineage(
    conn: Connection,
    run_id: str | None,
    inputs: Sequence[Ref | str] = (),
    outputs: Sequence[Ref | str] = (),
    meta: LineageMeta | None = None,
    main: Ref | None = None,
) -> None:
    """Record inside the caller's transaction; raises, unlike :func:`record_run_lineage`.

    The main node is the run ``run_id`` unless ``main`` names another node (a version
    made from a project has no run: the project flows straight into it).

    Raises:
        NotFoundError, InvalidInputError: a run or a named thing does not exist.
    """
    if main is None:
        if run_id is None:
            raise NotFoundError("lineage: give a run id or a main node to record against")
        main_row = _run_row(conn, run_id)
    else:
        (main_row,) = resolve_refs(conn, [main], None)
    if meta and meta.node_settings:
        main_row = (*main_row[:3], main_row[3] | meta.node_settings.set_fields(), main_row[4])
    card = meta.relation_settings.set_fields() if meta and meta.relation_settings else {}
    ins = resolve_refs(conn, inputs, main_row[2])
    outs = resolve_refs(conn, outputs, main_row[2])
    # Card settings belong to the data node too, so every view of it shows them.
    ins = [(*r[:3], r[3] | card, r[4]) for r in ins]
    outs = [(*r[:3], r[3] | card, r[4]) for r in outs]
    ids = upsert_nodes(conn, [main_row, *ins, *outs])
    me = ids[(main_row[0], main_row[1])]
    pairs = [(ids[(r[0], r[1])], me) for r in ins] + [(me, ids[(r[0], r[1])]) for r in outs]
    add_edges(conn, pairs, run_id, {p: card for p in pairs} if card else {})


def record_run_lineage(
    store: Store,
    run_id: str,
    inputs: Sequence[Ref | str] = (),
    outputs: Sequence[Ref | str] = (),
    meta: MetaArg = None,
) -> bool:
    """Record a run's inputs and outputs in one transaction; never raises.

    Items are :class:`Ref` objects or strings (``apples``, ``apples@2``,
    ``model:/w/detector.onnx``, ``file:/data/labels.json``, ``task:UUID``,
    ``dataset:NAME``). Returns False (and logs a warning saying why) when the
    lineage could not be recorded; the run itself goes on.
    """
    try:
        parsed = LineageMeta.model_validate(meta) if isinstance(meta, dict) else meta
        for attempt in (1, 2):
            try:
                with store.write() as conn:
                    record_lineage(conn, run_id, inputs, outputs, parsed)
                return True
            except IntegrityError:
                # Another run inserted the same new node first; the second try finds it.
                if attempt == 2:
                    raise
        return False
    except Exception as e:  # lineage is a side record: whatever went wrong, the run must go on
        logger.warning("lineage of run %s was not recorded (the run goes on): %s", run_id, e)
        logger.debug("lineage failure of run %s", run_id, exc_info=True)
        return False


class Lineage:
    """Mark what your own application read and wrote, for the lineage graph.

    ``Lineage(store, run_id)`` records against an existing run; without a run id,
    the first call creates a run of kind ``app`` named ``name`` in ``project``.
    Every method returns True when recorded, False (logged) when not; none raises.
    """

    def __init__(self, store: Store, run_id: str | None = None, *, name: str = "app", project: str | None = None):
        self.store = store
        self._run_id = run_id
        self._name = name
        self._project = project

    @property
    def run_id(self) -> str:
        """The run this lineage belongs to (created on first use when none was given).

        Raises:
            NotFoundError: ``project`` names no project.
        """
        if self._run_id is None:
            pid = self.store.get_project(self._project).id if self._project else None
            self._run_id = self.store.create_run(pid, "app", self._name, {}).id
        return self._run_id

    def _add(self, direction: Direction, ref: Ref | str, meta: MetaArg) -> bool:
        try:
            run_id = self.run_id
        except Exception as e:  # never break the caller
            logger.warning("lineage %s %s was not recorded (the run goes on): %s", direction.value, ref, e)
            return False
        if direction is Direction.INPUT:
            return record_run_lineage(self.store, run_id, inputs=[ref], meta=meta)
        return record_run_lineage(self.store, run_id, outputs=[ref], meta=meta)

    @staticmethod
    def _project_ref(project: str, version: int | str | None) -> Ref:
        if version is None:
            return Ref(kind=NodeKind.PROJECT, key=project)
        return Ref(kind=NodeKind.PROJECT_VERSION, key=f"{project}@{version}")

    # -------------------------------------------------------------- inputs
    def add_input_project(self, project: str, version: int | str | None = None, meta: MetaArg = None) -> bool:
        """A project (name or id) the run read; with ``version``, that saved version of it."""
        return self._add(Direction.INPUT, self._project_ref(project, version), meta)

    def add_input_dataset(self, dataset: str, meta: MetaArg = None) -> bool:
        """A dataset (id, or name within the run's project) the run read."""
        return self._add(Direction.INPUT, Ref(kind=NodeKind.DATASET, key=dataset), meta)

    def add_input_file(self, path: str, model_weight: bool = False, meta: MetaArg = None) -> bool:
        """A file the run read; ``model_weight`` marks model weights."""
        return self._add(Direction.INPUT, Ref.file(path, model_weight), meta)

    def add_input_folder(self, path: str, meta: MetaArg = None) -> bool:
        return self._add(Direction.INPUT, Ref.folder(path), meta)

    def add_input_task(self, task_uuid: str, meta: MetaArg = None) -> bool:
        return self._add(Direction.INPUT, Ref.task(task_uuid), meta)

    def add_input_job(self, job_id: str, meta: MetaArg = None) -> bool:
        """A labeling job whose results the run read."""
        return self._add(Direction.INPUT, Ref.job(job_id), meta)

    # ------------------------------------------------------------- outputs
    def add_output_project(self, project: str, version: int | str | None = None, meta: MetaArg = None) -> bool:
        """A project the run wrote; with ``version``, the version it saved."""
        return self._add(Direction.OUTPUT, self._project_ref(project, version), meta)

    def add_output_dataset(self, dataset: str, meta: MetaArg = None) -> bool:
        return self._add(Direction.OUTPUT, Ref(kind=NodeKind.DATASET, key=dataset), meta)

    def add_output_file(self, path: str, model_weight: bool = False, meta: MetaArg = None) -> bool:
        """A file the run wrote (an export, a trained model when ``model_weight``)."""
        return self._add(Direction.OUTPUT, Ref.file(path, model_weight), meta)

    def add_output_folder(self, path: str, meta: MetaArg = None) -> bool:
        return self._add(Direction.OUTPUT, Ref.folder(path), meta)

    def add_output_task(self, task_uuid: str, meta: MetaArg = None) -> bool:
        return self._add(Direction.OUTPUT, Ref.task(task_uuid), meta)

    def add_output_job(self, job_id: str, meta: MetaArg = None) -> bool:
        """A labeling job the run created."""
        return self._add(Direction.OUTPUT, Ref.job(job_id), meta)

    def add_output_app(self, meta: MetaArg = None) -> bool:
        """This run's app session, where its results can be looked at after it ends."""
        try:
            run_id = self.run_id
        except Exception as e:  # never break the caller
            logger.warning("lineage app output was not recorded (the run goes on): %s", e)
            return False
        ref = Ref(kind=NodeKind.APP, key=run_id, attrs={"label": f"{self._name} session"})
        return self._add(Direction.OUTPUT, ref, meta)
