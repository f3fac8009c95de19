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

from pydantic import ValidationError
from pydantic_core import from_json
from sqlalchemy import Connection, Text, and_, func, select, type_coerce

from common.export.summary import Tally
from common.store import ProjectRecord, Store, compile_filters
from common.store.schema import data_units, label_blobs, label_rows, tasks
from common.totask.objects import AnnotationObject, Provenance
from common.versions.snapshot import VersionRecord, chain_ids, iter_version_tasks, label_states

__all__ = ["NOT_NATIVE", "NO_SIZE", "PAGE", "ExportItem", "ExportSource", "image_size", "local_path"]

PAGE = 2000
NOT_NATIVE = "not a native annotation object"
NO_SIZE = "image size unknown (set the data unit's meta width/height)"


@dataclass(frozen=True, slots=True)
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
    width: float | None
    height: float | None
    objects: list[AnnotationObject]

    @property
    def image(self) -> dict[str, Any]:
        """The primary file (or the only one; else the first), as stored: url, original_name."""
        for f in self.files.values():
            if f.get("is_primary"):
                return f
        return next(iter(self.files.values()), {})

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


def _dim(meta: dict[str, Any], *keys: str) -> float | None:
    for k in keys:
        v = meta.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            return float(v)
    return None


def image_size(meta: dict[str, Any], url: str) -> tuple[float | None, float | None]:
    """The image size: the data unit's meta (as ToTask reads it), else a local file's header."""
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


_FIELDS = frozenset(AnnotationObject.model_fields)
_NUMBERS = (int, float)
_BOX_KEYS = ("x", "y", "width", "height")


def _checked(o: Any) -> AnnotationObject | None:
    """The object built without pydantic's validation when it is plainly valid, else None.

    Label rows written by runs hold objects already in the native form (``wire()``);
    checking that form by hand and constructing the model costs a tenth of validating
    it, which is most of an export's time. Anything unusual goes through validation.
    """
    if type(o) is not dict or not _FIELDS.issuperset(o):
        return None
    ident, cls, kind, coords = o.get("id"), o.get("class_id"), o.get("type"), o.get("coordinates", {})
    props, score, prov = o.get("properties", {}), o.get("score"), o.get("provenance")
    if not isinstance(cls, (int, str)) or isinstance(cls, bool):
        return None
    if type(ident) is not str or type(coords) is not dict or type(props) is not dict:
        return None
    if score is not None and not (type(score) in _NUMBERS and 0.0 <= score <= 1.0):
        return None
    if kind == "bbox":
        if not all(type(coords.get(k)) in _NUMBERS for k in _BOX_KEYS) or coords["width"] < 0 or coords["height"] < 0:
            return None
    elif kind in ("polygon", "polyline"):
        pts = coords.get("points")
        if type(pts) is not list or len(pts) < (3 if kind == "polygon" else 2):
            return None
        for p in pts:
            if type(p) is not list or len(p) != 2 or type(p[0]) not in _NUMBERS or type(p[1]) not in _NUMBERS:
                return None
    elif kind == "keypoint":
        if type(coords.get("x")) not in _NUMBERS or type(coords.get("y")) not in _NUMBERS:
            return None
    elif kind != "classification":
        return None
    provenance = None
    if prov is not None:
        if type(prov) is not dict or prov.get("method") not in ("file", "inference"):
            return None
        if not all(v is None or type(v) is str for k, v in prov.items() if k in Provenance.model_fields):
            return None
        provenance = Provenance.model_construct(**prov)
    return AnnotationObject.model_construct(
        id=ident, class_id=cls, type=kind, coordinates=coords, properties=props,
        score=None if score is None else float(score), provenance=provenance,
    )  # fmt: skip


def _objects(raw: Sequence[Any] | None, tally: Tally) -> list[AnnotationObject]:
    out: list[AnnotationObject] = []
    for o in raw or ():
        obj = _checked(o)
        if obj is None:
            try:
                obj = AnnotationObject.model_validate(o)
            except ValidationError:
                tally.skip(NOT_NATIVE)
                continue
        out.append(obj)
    return out


def _json(value: Any) -> Any:
    # SQLite hands the JSON columns over as text (parsed here by pydantic-core's Rust parser,
    # three times faster than json.loads); PostgreSQL's driver has parsed them already.
    return from_json(value) if isinstance(value, (str, bytes)) else value


def _primary_url(files: dict[str, Any]) -> str:
    for f in files.values():
        if isinstance(f, dict) and f.get("is_primary"):
            return str(f.get("url") or "")
    first: Any = next(iter(files.values()), {})
    return str(first.get("url") or "") if isinstance(first, dict) else ""


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
            for tid, data_hash, title, stage, status, branch, files_text, meta_text, objects_text in rows:
                index += 1
                files, meta, objects = _json(files_text), _json(meta_text) or {}, _json(objects_text)
                w, h = image_size(meta, _primary_url(files or {}))
                page.append(ExportItem(index, data_hash, title, stage, status, branch, files or {}, meta, w, h,
                                       _objects(objects, tally)))  # fmt: skip
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
                    w, h = image_size(meta, _primary_url(files))
                    blob = blobs.get((s.data_hash, s.label_branch))
                    raw = objects.get(blob) if blob is not None else None
                    page.append(ExportItem(index, s.data_hash, title, s.stage_uuid, s.status, s.label_branch, files,
                                           meta, w, h, _objects(raw, tally)))  # fmt: skip
                yield page


def _blobs(conn: Connection, hashes: set[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    keys = sorted(hashes)
    for i in range(0, len(keys), 500):
        part = keys[i : i + 500]
        rows = conn.execute(select(label_blobs.c.hash, label_blobs.c.objects).where(label_blobs.c.hash.in_(part)))
        out.update({h: o for h, o in rows})
    return out


def _units(conn: Connection, hashes: list[str]) -> dict[str, tuple[str, dict[str, Any], dict[str, Any]]]:
    query = select(data_units.c.data_hash, data_units.c.title, data_units.c.files, data_units.c.meta)
    out: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {}
    for i in range(0, len(hashes), 500):
        rows = conn.execute(query.where(data_units.c.data_hash.in_(hashes[i : i + 500])))
        out.update({h: (t, f or {}, m or {}) for h, t, f, m in rows})
    return out
