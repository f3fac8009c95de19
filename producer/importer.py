"""Read data units from a folder of images or a JSONL manifest, streaming, and import them.

A folder gives one data unit per image (``jpg``, ``jpeg``, ``png``, ``bmp``,
``tif``, ``tiff``, ``webp``, searched recursively), its file under the
specification name ``image``. A manifest holds one JSON object per line::

    {"title": "apple_01.jpg", "data_hash": "…uuid…", "meta": {"orchard": "north"},
     "files": {"image": {"url": "s3://bucket/apple_01.jpg", "is_primary": true}}}

Data hashes are deterministic (uuid5 of the primary file's URL unless the line
gives one), so importing the same data twice is refused instead of doubling it.
An import checks everything before writing anything: a bad line or a unit
already in the store stops it with nothing imported.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from common.errors import InvalidInputError
from common.store import DataFile, DataUnit, Store

__all__ = ["IMAGE_SUFFIXES", "ImportReport", "ImportSource", "import_data", "open_source"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
# Hashes are checked against the store this many at a time (one IN query each).
_CHECK_CHUNK = 500
_TITLE_MAX = 500

Progress = Callable[[str, int, int | None], None]


def file_hash(url: str) -> str:
    """The data hash of a unit known only by its primary file's URL: stable across imports."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, url))


class _ManifestFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1)
    original_name: str = ""
    is_primary: bool = False


class _ManifestLine(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=_TITLE_MAX)
    data_hash: uuid.UUID | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, _ManifestFile] = Field(min_length=1)

    @field_validator("files")
    @classmethod
    def _one_primary(cls, files: dict[str, _ManifestFile]) -> dict[str, _ManifestFile]:
        primaries = [name for name, f in files.items() if f.is_primary]
        if len(primaries) > 1:
            raise ValueError(f"only one file may be is_primary, got {', '.join(primaries)}")
        return files

    def to_unit(self) -> DataUnit:
        files = {
            name: DataFile(
                url=f.url, original_name=f.original_name or f.url.rsplit("/", 1)[-1], is_primary=f.is_primary
            )
            for name, f in self.files.items()
        }
        primary = next((f for f in files.values() if f.is_primary), files[min(files)])
        data_hash = str(self.data_hash) if self.data_hash else file_hash(primary.url)
        return DataUnit(data_hash=data_hash, title=self.title, meta=self.meta, files=files)


@dataclass(frozen=True)
class ImportSource:
    """Where data units come from; :meth:`units` may be called more than once."""

    path: Path
    kind: str  # "folder" or "manifest"

    @property
    def default_dataset(self) -> str:
        return self.path.name if self.kind == "folder" else self.path.stem

    def units(self) -> Iterator[DataUnit]:
        """Yield the source's data units lazily.

        Raises:
            InvalidInputError: a manifest line is not a valid data unit; the
                message names the file, the line number and what is wrong.
        """
        return _folder_units(self.path) if self.kind == "folder" else _manifest_units(self.path)


def open_source(path: str | Path) -> ImportSource:
    """Recognise ``path`` as a folder of images or a JSONL manifest.

    Raises:
        InvalidInputError: the path does not exist or is neither.
    """
    p = Path(path).expanduser().resolve()
    if p.is_dir():
        return ImportSource(p, "folder")
    if p.is_file():
        if p.suffix.lower() not in (".jsonl", ".ndjson", ".json"):
            raise InvalidInputError(
                f"{p} is neither a folder of images nor a JSONL manifest (.jsonl); "
                "pass a folder or a manifest with one JSON data unit per line"
            )
        return ImportSource(p, "manifest")
    raise InvalidInputError(f"{path} does not exist; pass a folder of images or a JSONL manifest")


def _folder_units(root: Path) -> Iterator[DataUnit]:
    # Sorted at each level, so titles come in a stable, human order.
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            path = Path(current) / name
            url = path.as_uri()
            yield DataUnit(
                data_hash=file_hash(url),
                title=path.relative_to(root).as_posix(),
                files={"image": DataFile(url=url, original_name=name, is_primary=True)},
            )


def _manifest_units(path: Path) -> Iterator[DataUnit]:
    try:
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    yield _parse_line(path, number, line)
    except UnicodeDecodeError as e:
        raise InvalidInputError(f"{path}: not UTF-8 text ({e.reason}); save the manifest as UTF-8") from e
    except OSError as e:
        raise InvalidInputError(f"{path}: cannot read the manifest ({e.strerror}); check the path") from e


def _parse_line(path: Path, number: int, line: str) -> DataUnit:
    where = f"{path.name} line {number}"
    try:
        data = json.loads(line)
    except json.JSONDecodeError as e:
        raise InvalidInputError(
            f"{where}: not valid JSON ({e.msg} at column {e.colno}); each line holds one JSON object"
        ) from e
    if not isinstance(data, dict):
        raise InvalidInputError(f"{where}: expected a JSON object with 'title' and 'files', got {type(data).__name__}")
    try:
        return _ManifestLine.model_validate(data).to_unit()
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "line"
        more = f" (and {e.error_count() - 1} more problem(s))" if e.error_count() > 1 else ""
        raise InvalidInputError(
            f"{where}: {field}: {err['msg']}{more}; a line looks like "
            '{"title": "a.jpg", "files": {"image": {"url": "file:///data/a.jpg", "is_primary": true}}}'
        ) from e


@dataclass(frozen=True)
class ImportReport:
    """What an import did."""

    project_id: str
    dataset_id: str
    dataset: str
    imported: int


def _check(store: Store, source: ImportSource, progress: Progress | None) -> int:
    """Validate every unit and refuse duplicates before anything is written; return the count."""
    # Ints of the UUIDs, not strings: a million of them fit in a few tens of MiB.
    seen: set[int] = set()
    chunk: dict[str, str] = {}
    count = 0

    def flush() -> None:
        found = store.get_data_units(chunk)
        if found:
            h = next(h for h in chunk if h in found)  # the first in import order
            unit = found[h]
            raise InvalidInputError(
                f"data unit {chunk[h]!r} (data hash {h}) is already imported as {unit.title!r}; "
                f"{len(found)} of the next {len(chunk)} are. Remove them from the import, "
                "or give manifest lines their own data_hash"
            )
        chunk.clear()

    for unit in source.units():
        key = uuid.UUID(unit.data_hash).int
        if key in seen:
            raise InvalidInputError(
                f"{unit.title!r} (data hash {unit.data_hash}) is listed twice in {source.path.name}; "
                "each data unit must appear once"
            )
        seen.add(key)
        chunk[unit.data_hash] = unit.title
        count += 1
        if len(chunk) >= _CHECK_CHUNK:
            flush()
            if progress is not None:
                progress("checking", count, None)
    if chunk:
        flush()
    if count == 0:
        what = f"no images ({', '.join(sorted(IMAGE_SUFFIXES))})" if source.kind == "folder" else "no data units"
        raise InvalidInputError(f"{source.path} holds {what}; nothing to import")
    return count


def import_data(
    store: Store,
    project_id: str,
    source: ImportSource,
    dataset: str | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import every data unit of ``source`` into the project, one task each in its start stage.

    Everything is read and checked first (a second streaming pass then
    writes), so a bad line or a unit already imported leaves the store as it was.

    Raises:
        InvalidInputError: a bad manifest line (with its line number), a data
            unit already imported or listed twice, or an empty source.
    """
    total = _check(store, source, progress)
    name = dataset or source.default_dataset
    dataset_id = store.dataset(project_id, name)
    done = 0

    def counted() -> Iterator[DataUnit]:
        nonlocal done
        for unit in source.units():
            done += 1
            if progress is not None and done % 1000 == 0:
                progress("importing", done, total)
            yield unit

    imported = store.add_data_units(project_id, dataset_id, counted())
    if progress is not None:
        progress("importing", imported, total)
    return ImportReport(project_id=project_id, dataset_id=dataset_id, dataset=name, imported=imported)
