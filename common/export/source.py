"""The tasks an export reads, a keyset page at a time, each with its data unit and label objects.

A live project is read in task-id order with one query per page (tasks joined to
their data units and label rows), as the producer pages a stage; a saved version
is read through :mod:`common.versions.snapshot` in data-hash order. Either way a
page at a time is all that is held, so a million tasks export in flat memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from sqlalchemy import Connection, Text, and_, func, select, type_coerce

from common.export.jsonio import loads
from common.export.native import NOT_NATIVE, NativeObject, native_objects
from common.export.summary import Tally
from common.store import ProjectRecord, Store, compile_filters
from common.store.schema import data_units, label_blobs, label_rows, tasks
from common.versions.snapshot import VersionRecord, chain_ids, iter_version_tasks, label_states

__all__ = ["NOT_NATIVE", "NO_SIZE", "PAGE", "ExportItem", "ExportSource", "image_size", "local_path"]

PAGE = 2000
NO_SIZE = "image size unknown (set the data unit's meta width/height)"


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs a microsecond a field
class ExportItem:
    """One data unit to export: where its task stands, its image and its objects in pixels."""

    index: int  # 1-based position in the export: COCO image ids, file-name tie-breaks
    data_hash: str
    title: str
    stage_uuid: str
    status: str
    branch: str
    files: dict[str, dict[str, Any]]
    meta: dict[str, Any]
    image: dict[str, Any]  # the primary file (or the only one; else the first), as stored: url, original_name
    width: float | None
    height: float | None
    objects: list[NativeObject]

    @property
    def image_url(self) -> str:
        return str(self.image.get("url") or "")

    @property
    def file_name(self) -> str:
        """The image's file name: its original name, else the data unit's title."""
        return str(self.image.get("original_name") or self.title)


def local_path(url: str) -> Path | None:
    """The local file a ``file://`` URL (or a plain path) names, or None for remote URLs."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and url:
        return Path(url)
    return None


_NUMBERS = frozenset((int, float))


def _dim(meta: dict[str, Any], *keys: str) -> float | None:
    for k in keys:
        v = meta.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            return float(v)
    return None


def image_size(meta: dict[str, Any], url: str) -> tuple[float | None, float | None]:
    """The image size: the data unit's meta (as ToTask reads it), else a local file's header."""
    w, h = meta.get("width", 0), meta.get("height", 0)
    if type(w) in _NUMBERS and type(h) in _NUMBERS and w > 0 and h > 0:  # the usual case, checked first
        return float(w), float(h)
    w, h = _dim(meta, "width", "image_width"), _dim(meta, "height", "image_height")
    if w and h:
        return w, h
    path = local_path(url)
    if path is None or not path.is_file():
        return None, None
    from PIL import Image, UnidentifiedImageError  # only for units whose meta lacks a size

    try:
        with Image.open(path) as im:  # reads the header, not the pixels
            return float(im.width), float(im.height)
    except (OSError, UnidentifiedImageError):
        return None, None


def _json(value: Any) -> Any:
    # SQLite hands the JSON columns over as text (parsed by orjson: 6 us a row against
    # pydantic-core's 10 and json's 20); PostgreSQL's driver has parsed them already.
    return loads(value) if isinstance(value, (str, bytes)) else value


def _primary(files: dict[str, Any]) -> dict[str, Any]:
    first: dict[str, Any] | None = None
    for f in files.values():
        if type(f) is dict:
            if f.get("is_primary"):
                return f
            if first is None:
                first = f
    return first or {}


def _item(
    index: int, data_hash: str, title: str, stage: str, status: str, branch: str,
    files: Any, meta: Any, objects: Any, tally: Tally,
) -> ExportItem:  # fmt: skip
    files = files if type(files) is dict else {}
    meta = meta if type(meta) is dict else {}
    image = _primary(files)
    w, h = image_size(meta, str(image.get("url") or ""))
    return ExportItem(index, data_hash, title, stage, status, branch, files, meta, image, w, h,
                      native_objects(objects, tally))  # fmt: skip


class ExportSource:
    """The tasks of a project (or of one saved version) that match a stage and statuses."""

    def __init__(
        self,
        store: Store,
        project: ProjectRecord,
        version: VersionRecord | None = None,
        stage_uuid: str | None = None,
        statuses: Sequence[str] | None = None,
        page_size: int = PAGE,
    ) -> None:
        self.store = store
        self.project = project
        self.version = version
        self.stage_uuid = stage_uuid
        self.statuses = list(statuses) if statuses else None
        self.page_size = page_size
        filters: dict[str, Any] = {"status__in": self.statuses} if self.statuses else {}
        # Checks the statuses up front: an unknown one is an InvalidInputError listing the valid ones.
        self._where, _ = compile_filters(filters)
        self._wanted = {str(s).upper() for s in self.statuses} if self.statuses else None

    def total(self) -> int | None:
        """How many tasks the export will read (for a progress bar); None when unknown up front."""
        if self.version is not None:
            return self.version.task_count if self.stage_uuid is None and self._wanted is None else None
        query = select(func.count()).select_from(tasks).where(tasks.c.project_id == self.project.id, self._where)
        if self.stage_uuid is not None:
            query = query.where(tasks.c.stage_uuid == self.stage_uuid)
        with self.store.read() as conn:
            return int(conn.execute(query).scalar() or 0)

    def pages(self, tally: Tally) -> Iterator[list[ExportItem]]:
        """Pages of export items, in task order (version exports: in data-hash order).

        Raises:
            InvalidInputError: a status is unknown.
        """
        if self.version is None:
            yield from self._live_pages(tally)
        else:
            yield from self._version_pages(tally)

    def _live_pages(self, tally: Tally) -> Iterator[list[ExportItem]]:
        lr = label_rows
        joined = tasks.join(data_units, data_units.c.data_hash == tasks.c.data_hash).outerjoin(
            lr,
            and_(
                lr.c.project_id == tasks.c.project_id,
                lr.c.data_hash == tasks.c.data_hash,
                lr.c.branch == tasks.c.label_branch,
            ),
        )
        raw = [type_coerce(c, Text) for c in (data_units.c.files, data_units.c.meta, lr.c.objects)]
        cols = (tasks.c.id, tasks.c.data_hash, tasks.c.data_title, tasks.c.stage_uuid, tasks.c.status,
                tasks.c.label_branch, *raw)  # fmt: skip
        base = select(*cols).select_from(joined).where(tasks.c.project_id == self.project.id, self._where)
        if self.stage_uuid is not None:
            base = base.where(tasks.c.stage_uuid == self.stage_uuid)
        after, index = 0, 0
        while True:
            with self.store.read() as conn:
                rows = conn.execute(base.where(tasks.c.id > after).order_by(tasks.c.id).limit(self.page_size)).all()
            page = []
            for tid, data_hash, title, stage, status, branch, files, meta, objects in rows:
                index += 1
                page.append(_item(index, data_hash, title, stage, status, branch, _json(files), _json(meta),
                                  _json(objects), tally))  # fmt: skip
                after = tid
            if page:
                yield page
            if len(rows) < self.page_size:
                return

    def _version_pages(self, tally: Tally) -> Iterator[list[ExportItem]]:
        assert self.version is not None
        index = 0
        with self.store.read() as conn:
            chain = chain_ids(conn, self.version)
            for states in iter_version_tasks(conn, chain, self.page_size):
                chosen = [
                    s
                    for s in states
                    if (self.stage_uuid is None or s.stage_uuid == self.stage_uuid)
                    and (self._wanted is None or s.status in self._wanted)
                ]
                if not chosen:
                    continue
                hashes = [s.data_hash for s in chosen]
                blobs = label_states(conn, chain, hashes)
                objects = _blobs(conn, {h for h in blobs.values() if h is not None})
                units = _units(conn, hashes)
                page = []
                for s in chosen:
                    index += 1
                    title, files, meta = units.get(s.data_hash, (s.data_hash, {}, {}))
                    blob = blobs.get((s.data_hash, s.label_branch))
                    raw = objects.get(blob) if blob is not None else None
                    page.append(_item(index, s.data_hash, title, s.stage_uuid, s.status, s.label_branch, files, meta,
                                      raw, tally))  # fmt: skip
                yield page


def _blobs(conn: Connection, hashes: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    keys = sorted(hashes)
    query = select(label_blobs.c.hash, type_coerce(label_blobs.c.objects, Text))
    for i in range(0, len(keys), 500):
        rows = conn.execute(query.where(label_blobs.c.hash.in_(keys[i : i + 500])))
        out.update({h: _json(o) for h, o in rows})
    return out


def _units(conn: Connection, hashes: list[str]) -> dict[str, tuple[str, Any, Any]]:
    query = select(data_units.c.data_hash, data_units.c.title, *(type_coerce(c, Text) for c in
                   (data_units.c.files, data_units.c.meta)))  # fmt: skip
    out: dict[str, tuple[str, Any, Any]] = {}
    for i in range(0, len(hashes), 500):
        rows = conn.execute(query.where(data_units.c.data_hash.in_(hashes[i : i + 500])))
        out.update({h: (t, _json(f), _json(m)) for h, t, f, m in rows})
    return out
