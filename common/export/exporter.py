"""Export a project's labels (or a saved version's) to a file format: check the request, stream, summarise.

:func:`export_project` is what ``annoflow export`` and ``Project.export`` call. It
resolves ``project`` / ``project@N`` and the stage, checks the output path before
anything is written, then streams keyset pages from :class:`ExportSource` into the
format's writer.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from common.errors import InvalidInputError, NotFoundError
from common.export.coco import CocoWriter
from common.export.jsonl import JsonlWriter
from common.export.labelstudio import LabelStudioWriter
from common.export.paths import prepare_target
from common.export.source import PAGE, ExportSource
from common.export.summary import ExportSummary, Tally
from common.export.voc import VocWriter
from common.export.writer import Writer
from common.export.yolo import YoloWriter
from common.store import Store
from common.versions import resolve_input

__all__ = ["FORMATS", "ExportFormat", "Progress", "export_project", "open_source"]

ExportFormat = Literal["coco", "yolo", "voc", "labelstudio", "jsonl"]
FORMATS: dict[str, type[Writer]] = {
    w.name: w for w in (CocoWriter, YoloWriter, VocWriter, LabelStudioWriter, JsonlWriter)
}
Progress = Callable[[int, int | None], None]
"""Called after each page with (tasks done, tasks in all or None when unknown)."""


class _CollectorPause:
    """Pauses Python's cyclic garbage collector while any export streams, then restores it.

    An export allocates millions of small dicts and lists (parsed rows, the writers'
    batches) that reference counting frees as each page goes; they form no cycles (an
    export of 200,000 tasks leaves 0 to 13 unreachable objects). The cyclic collector
    still walks them every few hundred allocations, and the pages and batches alive
    at a time get promoted and rescanned: measured, 40% of a COCO export's time.
    Counted, so overlapping exports in threads restore the collector only when the last ends.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._was_enabled = False

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._active == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0 and self._was_enabled:
                    gc.enable()


_collector_paused = _CollectorPause()


def _writer_class(fmt: str) -> type[Writer]:
    found = FORMATS.get(fmt.strip().lower())
    if found is None:
        raise InvalidInputError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return found


def open_source(
    store: Store,
    project: str,
    stage: str | None = None,
    status: str | Sequence[str] | None = None,
    version: int | None = None,
    page_size: int = PAGE,
) -> ExportSource:
    """The tasks an export of ``project`` (a name or id, or ``NAME@N`` / ``NAME@latest``) reads.

    Raises:
        InvalidInputError: ``version`` contradicts the ``@N`` of ``project``, the text after
            '@' is not a number, a status is unknown, or the stage is a router.
        NotFoundError: no such project, version or stage.
    """
    run_input = resolve_input(store, project)
    if version is not None:
        if run_input.version is not None and run_input.version.number != version:
            raise InvalidInputError(
                f"{project!r} names version {run_input.version.number} but version={version} was given; name one"
            )
        if run_input.version is None:
            run_input = resolve_input(store, f"{run_input.project.id}@{version}")
    record, saved = run_input.project, run_input.version
    stage_uuid = None
    if stage is not None:
        wf = store.workflow(record.id, saved.workflow_version if saved else None)
        found = wf.stage(stage)
        if found.type.is_router:
            raise NotFoundError(f"'{stage}' is a router; routers hold no tasks: name a stage")
        stage_uuid = found.uuid
    statuses = [status] if isinstance(status, str) else list(status or [])
    return ExportSource(store, record, saved, stage_uuid, statuses or None, page_size)


def export_project(
    store: Store,
    project: str,
    format: str,
    output: str | Path,
    *,
    stage: str | None = None,
    status: str | Sequence[str] | None = None,
    version: int | None = None,
    root: str | Path | None = None,
    force: bool = False,
    page_size: int = PAGE,
    on_progress: Progress | None = None,
) -> ExportSummary:
    """Export the labels of ``project`` (or of its saved version) to ``output`` in ``format``.

    Args:
        store: the store to read.
        project: a project name or id, or ``NAME@N`` / ``NAME@latest`` for a saved version.
        format: ``coco``, ``yolo``, ``voc``, ``labelstudio`` or ``jsonl``.
        output: the file (or, for yolo and voc, the folder) to write, inside ``root``.
        stage: only the tasks in this stage (title or uuid).
        status: only the tasks with this status (or one of these).
        version: export saved version N (the same as ``project@N``).
        root: the folder the output must stay inside (default: the current folder).
        force: replace an existing output.
        page_size: tasks read per keyset page.
        on_progress: called after each page with the tasks done and the total.

    Raises:
        InvalidInputError: unknown format or status, an output outside ``root``, an existing
            output without ``force``, or contradicting versions.
        NotFoundError: no such project, version or stage.
    """
    started = time.perf_counter()
    writer_cls = _writer_class(format)
    source = open_source(store, project, stage, status, version, page_size)
    target = prepare_target(output, root, force, writer_cls.folder)
    for extra in writer_cls.companions(target):
        if extra.exists() and not force:
            raise InvalidInputError(
                f"{extra} exists; pass --force (force=True) to overwrite it, or choose another path"
            )
    total = source.total()
    tally = Tally()
    writer = writer_cls(target, tally)
    writer.open()
    try:
        with _collector_paused():
            for page in source.pages(tally):
                for item in page:
                    writer.write(item)
                tally.tasks += len(page)
                if on_progress is not None:
                    on_progress(tally.tasks, total)
        files = writer.close()
    except BaseException:
        writer.abort()
        raise
    return ExportSummary(
        format=writer_cls.name,
        project=source.project.name,
        version=source.version.number if source.version else None,
        output=str(target),
        files=[str(f) for f in files],
        tasks=tally.tasks,
        objects=tally.objects,
        skipped=dict(tally.skipped),
        classes=writer.classes.names,
        seconds=round(time.perf_counter() - started, 3),
    )
