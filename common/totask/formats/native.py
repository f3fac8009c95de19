"""The native format of the ToTask seed: ``{"objects": [{id, class_id, type, coordinates, properties}]}``."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from common.errors import InvalidInputError
from common.totask.formats.context import ConvertContext, Parsed
from common.totask.objects import AnnotationObject

__all__ = ["is_native", "parse_native", "parse_objects"]

_FIELDS = set(AnnotationObject.model_fields)


def is_native(data: Any) -> bool:
    """True for a dict with an ``objects`` list (or a bare list of object dicts)."""
    if isinstance(data, dict):
        return isinstance(data.get("objects"), list)
    return isinstance(data, list) and all(isinstance(o, dict) and "type" in o for o in data)


def _size(data: dict[str, Any]) -> tuple[float | None, float | None]:
    image = data["image"] if isinstance(data.get("image"), dict) else data
    w, h = image.get("width"), image.get("height")
    if isinstance(w, (int, float)) and isinstance(h, (int, float)) and w > 0 and h > 0:
        return float(w), float(h)
    return None, None


def _normalise(raw: dict[str, Any], index: int) -> dict[str, Any]:
    obj = {k: v for k, v in raw.items() if k in _FIELDS and k != "provenance"}
    # Keys we do not model are kept as properties rather than failing a whole file over them.
    extra = {k: v for k, v in raw.items() if k not in _FIELDS}
    props = dict(obj.get("properties") or {})
    props.update(extra)
    obj["properties"] = props
    obj.setdefault("id", f"obj_{index + 1:03d}")
    conf = props.get("confidence")
    if obj.get("score") is None and isinstance(conf, (int, float)) and 0.0 <= conf <= 1.0:
        obj["score"] = float(conf)  # the seed puts the model's confidence in properties
    return obj


def parse_objects(items: list[Any], ctx: ConvertContext) -> list[AnnotationObject]:
    """Validate a list of native object dicts.

    Raises:
        InvalidInputError: the first invalid object, by index and id, with the reason.
    """
    objects: list[AnnotationObject] = []
    seen: set[str] = set()
    for i, raw in enumerate(items):
        if isinstance(raw, AnnotationObject):
            obj = raw
        else:
            if not isinstance(raw, dict):
                raise InvalidInputError(
                    f"Invalid annotation object in {ctx.source}: objects[{i}] is {type(raw).__name__}, "
                    "expected an object with id, class_id, type and coordinates"
                )
            try:
                obj = AnnotationObject.model_validate(_normalise(raw, i))
            except ValidationError as e:
                first = e.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "object"
                reason = str(first["msg"]).removeprefix("Value error, ")
                raise InvalidInputError(
                    f"Invalid annotation object in {ctx.source}: objects[{i}] ({raw.get('id', 'no id')}): "
                    f"{where}: {reason}; fix the object to the native format"
                ) from e
        if obj.id in seen:
            raise InvalidInputError(
                f"Invalid annotation object in {ctx.source}: duplicate object id {obj.id!r}; ids must be unique"
            )
        seen.add(obj.id)
        objects.append(obj)
    return objects


def parse_native(data: Any, ctx: ConvertContext) -> Parsed:
    """Convert a native annotation file.

    Raises:
        InvalidInputError: the file is not in the native format or an object is invalid.
    """
    if isinstance(data, list):
        return Parsed(parse_objects(data, ctx))
    if not is_native(data):
        raise InvalidInputError(
            f"Invalid annotation format in {ctx.source}: expected {{'objects': [...]}}; "
            "see the native object format or register a converter"
        )
    width, height = _size(data)
    return Parsed(parse_objects(data["objects"], ctx), width, height)
