"""Where an export may write: inside the given folder, never over an existing output unless forced.

Both the target the user names and every file an export derives from data (image
and label file names come from data-unit titles, which anybody importing data
chose) are confined to a folder, so ``-o ../elsewhere`` or a title like
``../../etc/passwd`` cannot write outside it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path, PurePosixPath

from common.errors import InvalidInputError

__all__ = ["member", "prepare_target", "safe_stem"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def prepare_target(output: str | Path, root: str | Path | None, force: bool, folder: bool) -> Path:
    """Resolve ``output`` against ``root`` (default: the current folder) and make room for it.

    Args:
        output: the file or folder to write, relative to ``root`` or absolute inside it.
        root: the folder the export must stay inside.
        force: replace an existing output.
        folder: the format writes a folder (YOLO, VOC), not one file.

    Raises:
        InvalidInputError: the target lies outside ``root``, or it exists and ``force`` is not set.
    """
    base = Path(root or ".").resolve()
    target = (base / Path(output)).resolve()
    if not _inside(target, base) or target == base:
        raise InvalidInputError(
            f"export target {str(output)!r} is outside the folder {str(base)!r} (or is that folder itself); "
            "write to a path inside it, or choose another root folder"
        )
    exists = target.exists() and (not target.is_dir() or any(target.iterdir()))
    if exists and not force:
        raise InvalidInputError(f"{target} exists; pass --force (force=True) to overwrite it, or choose another path")
    if target.exists() and folder != target.is_dir():
        kind = "a folder" if folder else "a file"
        raise InvalidInputError(f"{target} exists and is not {kind}; this format writes {kind}: choose another path")
    if exists and folder:
        # Replace what an earlier export left, so no stale label file outlives its task.
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def safe_stem(name: str, fallback: str) -> str:
    """A file stem made of the last part of ``name``, without its suffix, in safe characters."""
    stem = _UNSAFE.sub("_", PurePosixPath(name.replace("\\", "/")).stem).strip("._")
    return stem or fallback


def member(folder: Path, *parts: str) -> Path:
    """``folder / parts``, refused when it would leave ``folder``.

    Raises:
        InvalidInputError: the joined path escapes ``folder``.
    """
    path = folder.joinpath(*parts)
    if ".." in PurePosixPath(*parts).parts or not _inside(path.parent.resolve(), folder.resolve()):
        raise InvalidInputError(f"file name {'/'.join(parts)!r} would leave {folder}; rename the data unit")
    return path
