"""Annotation file formats and the user converter hook ``convert_data_from_file``.

Native, COCO and Label Studio files are recognised by shape. For anything else a user
supplies a converter: a function ``(data, context) -> native data`` named in the run's
parameters as ``"package.module:function"``, whose output is then read as native.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Literal

from common.errors import InvalidInputError
from common.totask.formats.coco import is_coco, parse_coco
from common.totask.formats.context import ConvertContext, Parsed
from common.totask.formats.labelstudio import is_labelstudio, parse_labelstudio
from common.totask.formats.native import is_native, parse_native

__all__ = [
    "ConvertContext",
    "Converter",
    "FormatName",
    "Parsed",
    "convert_data_from_file",
    "detect_format",
    "load_converter",
]

FormatName = Literal["native", "coco", "labelstudio"]
Converter = Callable[[Any, ConvertContext], Any]
"""A user converter: takes the parsed file and the task's context, returns native data
(``{"objects": [...]}`` or a list of object dicts)."""

_PARSERS: dict[str, Callable[[Any, ConvertContext], Parsed]] = {
    "native": parse_native,
    "coco": parse_coco,
    "labelstudio": parse_labelstudio,
}


def detect_format(data: Any) -> FormatName | None:
    """Which known format the data is in, by its shape; None when none fits."""
    if is_native(data):
        return "native"
    if is_labelstudio(data):
        return "labelstudio"
    if is_coco(data):
        return "coco"
    return None


def convert_data_from_file(data: Any, context: ConvertContext, converter: Converter | None = None) -> Parsed:
    """Turn a parsed annotation file into native objects.

    Args:
        data: the file's JSON.
        context: the task's image size and names.
        converter: a user hook run first; its output must be native data.

    Raises:
        InvalidInputError: the format is unknown, or an object is invalid.
    """
    if converter is not None:
        try:
            data = converter(data, context)
        except InvalidInputError:
            raise
        except Exception as e:  # a user's converter may raise anything; the task fails, not the worker
            raise InvalidInputError(
                f"converter failed on {context.source}: {type(e).__name__}: {e}; fix the converter or the file"
            ) from e
        return parse_native(data, context)
    fmt = detect_format(data)
    if fmt is None:
        raise InvalidInputError(
            f"Invalid annotation format in {context.source}: not native ({{'objects': [...]}}), COCO or "
            "a Label Studio prediction; convert it or name a converter ('module:function') in the run's parameters"
        )
    return _PARSERS[fmt](data, context)


def load_converter(ref: str) -> Converter:
    """Import a converter named ``"package.module:function"``.

    Raises:
        InvalidInputError: the reference is malformed, the module or attribute is missing,
            or it is not callable.
    """
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidInputError(f"converter {ref!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise InvalidInputError(
            f"converter {ref!r}: cannot import {module_name!r} ({e}); install it on the workers"
        ) from e
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise InvalidInputError(f"converter {ref!r}: {module_name} has no callable {attr!r}; check the name")
    return fn  # type: ignore[no-any-return]
