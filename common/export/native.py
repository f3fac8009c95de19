"""The stored objects an export reads, checked and kept as plain dicts in the native form.

A label row written by a run holds its objects in the native form
(:meth:`AnnotationObject.wire`). Checking that form by hand and keeping the parsed
dict costs a small fraction of building a pydantic model per object, which was most
of an export's time; anything unusual (an integer id, ``{x, y}`` points, a stray
key) goes through :class:`AnnotationObject` validation and comes out in the same
form, or is counted as skipped.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict, cast

from pydantic import ValidationError

from common.export.summary import Tally
from common.runner.labels import OBJECT_KEY
from common.totask.objects import AnnotationObject, ObjectType, Provenance

__all__ = ["NOT_NATIVE", "NativeObject", "box_of", "class_name", "native_objects"]

NOT_NATIVE = "not a native annotation object"


class NativeObject(TypedDict):
    """One object in pixels, as ``AnnotationObject.wire()`` writes it (no ``None`` values)."""

    id: str
    class_id: int | str
    type: ObjectType
    coordinates: dict[str, Any]
    properties: dict[str, Any]
    score: NotRequired[float]
    provenance: NotRequired[dict[str, Any]]


_FIELDS = frozenset(AnnotationObject.model_fields)
_PROVENANCE_TEXT = tuple(k for k in Provenance.model_fields if k != "method")
_METHODS = frozenset(("file", "inference"))
_LINES = {"polygon": 3, "polyline": 2}


_NUMBERS = frozenset((int, float))  # by exact type: a bool is not a coordinate


def _coordinates_ok(kind: str, c: dict[str, Any]) -> bool:
    # Type lookups in a set rather than calls: this runs for every object of an export.
    num = _NUMBERS
    if kind == "bbox":
        w, h = c.get("width", -1), c.get("height", -1)
        return type(c.get("x")) in num and type(c.get("y")) in num and type(w) in num and type(h) in num \
            and w >= 0 and h >= 0  # fmt: skip
    least = _LINES.get(kind)
    if least is not None:
        pts = c.get("points")
        if type(pts) is not list or len(pts) < least:
            return False
        for p in pts:
            if type(p) is not list or len(p) != 2 or type(p[0]) not in num or type(p[1]) not in num:
                return False
        return True
    if kind == "keypoint":
        return type(c.get("x")) in num and type(c.get("y")) in num
    return kind == "classification"


def _provenance(p: Any) -> dict[str, Any] | None:
    if type(p) is not dict or p.get("method") not in _METHODS:
        return None
    for v in p.values():
        if type(v) is not str:
            break
    else:
        return p  # every value text, the usual case: nothing more to check
    for k in _PROVENANCE_TEXT:
        v = p.get(k)
        if v is not None and type(v) is not str:
            return None
    if None in p.values():  # exclude_none, as wire() dumps it
        return {k: v for k, v in p.items() if v is not None}
    return p


def _as_native(o: Any) -> NativeObject | None:
    """``o`` itself, completed with its defaults, when it is plainly in the native form; else None."""
    if type(o) is not dict or not _FIELDS.issuperset(o):
        return None
    cls = o.get("class_id")
    if type(o.get("id")) is not str or (type(cls) is not int and type(cls) is not str):
        return None
    coords = o.setdefault("coordinates", {})
    if type(coords) is not dict or type(o.setdefault("properties", {})) is not dict:
        return None
    kind = o.get("type")
    if type(kind) is not str or not _coordinates_ok(kind, coords):
        return None
    if "score" in o:
        score = o["score"]
        if score is None:
            del o["score"]
        elif type(score) not in _NUMBERS or not 0.0 <= score <= 1.0:
            return None
        elif type(score) is int:
            o["score"] = float(score)
    if "provenance" in o:
        prov = o["provenance"]
        if prov is None:
            del o["provenance"]
        elif (checked := _provenance(prov)) is None:
            return None
        else:
            o["provenance"] = checked
    return cast(NativeObject, o)


def native_objects(raw: Any, tally: Tally) -> list[NativeObject]:
    """The objects of a label row in the native form; the ones that are not are counted in ``tally``."""
    if not raw:
        return []
    if type(raw) is not list:
        tally.skip(NOT_NATIVE)
        return []
    out: list[NativeObject] = []
    for o in raw:
        if type(o) is dict and OBJECT_KEY in o:
            # A stage handler's LabelRowEditor keys each object by its hash: that is the object's id.
            key = o[OBJECT_KEY]
            o = {k: v for k, v in o.items() if k != OBJECT_KEY}
            o.setdefault("id", str(key))
        obj = _as_native(o)
        if obj is None:
            try:
                obj = cast(NativeObject, AnnotationObject.model_validate(o).wire())
            except ValidationError:
                tally.skip(NOT_NATIVE)
                continue
        out.append(obj)
    return out


def class_name(obj: NativeObject) -> str:
    """The name a class goes by: the object's label, else its class id as text."""
    label = obj["properties"].get("label")
    return (str(label) if label is not None else "") or str(obj["class_id"])


def box_of(obj: NativeObject) -> tuple[float, float, float, float] | None:
    """The object's axis-aligned box ``(x1, y1, x2, y2)``; None for a classification."""
    c, kind = obj["coordinates"], obj["type"]
    if kind == "bbox":
        x, y = c["x"], c["y"]
        return x, y, x + c["width"], y + c["height"]
    if kind == "keypoint":
        return c["x"], c["y"], c["x"], c["y"]
    if kind in _LINES:
        xs = [p[0] for p in c["points"]]
        ys = [p[1] for p in c["points"]]
        return min(xs), min(ys), max(xs), max(ys)
    return None
