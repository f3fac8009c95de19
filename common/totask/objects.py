"""The native annotation object model that every format converts into.

An object has an ``id``, a ``class_id``, a ``type`` (bbox, polygon, polyline, keypoint,
classification), type-checked ``coordinates`` in pixels, free ``properties``, an optional
``score`` and the ``provenance`` of the run that produced it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.errors import InvalidInputError

__all__ = ["AnnotationObject", "ObjectType", "Provenance", "bbox_of", "check_bounds"]

ObjectType = Literal["bbox", "polygon", "polyline", "keypoint", "classification"]
_MIN_POINTS = {"polygon": 3, "polyline": 2}


class Provenance(BaseModel):
    """Where an object came from: which run, method and pre-processor made it."""

    model_config = ConfigDict(extra="allow")

    run_id: str | None = None
    method: Literal["file", "inference"]
    pre_processor: str | None = None
    pre_processor_version: str | None = None
    source: str | None = Field(None, description="annotation file URL, for the file method")


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _num(value: Any, what: str) -> float:
    if not _is_num(value):
        raise ValueError(f"{what} must be a number, got {value!r}")
    return float(value)


def _points(raw: Any) -> list[list[float]]:
    # Points come as [[x, y], ...] or [{"x": .., "y": ..}, ...]; store the first form.
    # The error text is built only on an error: this runs for every point of every file.
    if not isinstance(raw, list):
        raise ValueError(f"points must be a list of [x, y] pairs, got {type(raw).__name__}")
    out = []
    for i, p in enumerate(raw):
        if isinstance(p, (list, tuple)) and len(p) == 2:
            x, y = p
            names = (f"points[{i}][0]", f"points[{i}][1]")
        elif isinstance(p, dict):
            x, y = p.get("x"), p.get("y")
            names = (f"points[{i}].x", f"points[{i}].y")
        else:
            raise ValueError(f"points[{i}] must be [x, y] or {{x, y}}, got {p!r}")
        if not (_is_num(x) and _is_num(y)):
            _num(x, names[0])
            _num(y, names[1])
        out.append([float(x), float(y)])
    return out


_BBOX = {k: f"bbox {k}" for k in ("x", "y", "width", "height")}


class AnnotationObject(BaseModel):
    """One annotation object in pixels; coordinates are checked against its type."""

    model_config = ConfigDict(extra="forbid")

    id: str
    class_id: int | str
    type: ObjectType
    coordinates: dict[str, Any] = Field(default_factory=dict)
    properties: dict[str, Any] = Field(default_factory=dict)
    score: float | None = Field(None, ge=0.0, le=1.0)
    provenance: Provenance | None = None

    @model_validator(mode="before")
    @classmethod
    def _id_to_str(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("id"), int):
            data = {**data, "id": str(data["id"])}
        return data

    @model_validator(mode="after")
    def _coordinates(self) -> AnnotationObject:
        c = self.coordinates
        if self.type == "bbox":
            norm = {k: _num(c.get(k), what) for k, what in _BBOX.items()}
            if norm["width"] < 0 or norm["height"] < 0:
                raise ValueError(f"bbox width and height must be >= 0, got {norm['width']}x{norm['height']}")
            self.coordinates = {**c, **norm}
        elif self.type in _MIN_POINTS:
            pts = _points(c.get("points"))
            if len(pts) < _MIN_POINTS[self.type]:
                raise ValueError(f"a {self.type} needs at least {_MIN_POINTS[self.type]} points, got {len(pts)}")
            self.coordinates = {**c, "points": pts}
        elif self.type == "keypoint":
            self.coordinates = {**c, "x": _num(c.get("x"), "keypoint x"), "y": _num(c.get("y"), "keypoint y")}
        return self

    @property
    def label(self) -> str | None:
        """The human-readable class name, when the source gave one."""
        value = self.properties.get("label")
        return str(value) if value is not None else None

    def wire(self) -> dict[str, Any]:
        """The object as JSON-ready data for a label row (what ``model_dump(mode="json",
        exclude_none=True)`` gives, built by hand: it runs for every object of a run)."""
        out: dict[str, Any] = {
            "id": self.id,
            "class_id": self.class_id,
            "type": self.type,
            "coordinates": self.coordinates,
            "properties": self.properties,
        }
        if self.score is not None:
            out["score"] = self.score
        if self.provenance is not None:
            out["provenance"] = self.provenance.model_dump(mode="json", exclude_none=True)
        return out


def bbox_of(obj: AnnotationObject) -> tuple[float, float, float, float] | None:
    """The object's axis-aligned box ``(x1, y1, x2, y2)``; None for a classification."""
    c = obj.coordinates
    if obj.type == "bbox":
        return c["x"], c["y"], c["x"] + c["width"], c["y"] + c["height"]
    if obj.type == "keypoint":
        return c["x"], c["y"], c["x"], c["y"]
    if obj.type in _MIN_POINTS:
        xs = [p[0] for p in c["points"]]
        ys = [p[1] for p in c["points"]]
        return min(xs), min(ys), max(xs), max(ys)
    return None


def check_bounds(objects: list[AnnotationObject], width: float | None, height: float | None) -> None:
    """Refuse objects that reach outside a known image size.

    Raises:
        InvalidInputError: the first object outside ``[0, width] x [0, height]``.
    """
    if not width or not height:
        return  # size unknown: nothing to check against
    # Half a pixel of slack: converters round percentages and polygon vertices sit on edges.
    slack = 0.5
    for obj in objects:
        box = bbox_of(obj)
        if box is None:
            continue
        x1, y1, x2, y2 = box
        if x1 < -slack or y1 < -slack or x2 > width + slack or y2 > height + slack:
            raise InvalidInputError(
                f"Coordinates out of bounds: object {obj.id!r} ({obj.type}) spans "
                f"x {x1:g}..{x2:g}, y {y1:g}..{y2:g} but the image is {width:g}x{height:g}; "
                "fix the annotation file or the data unit's width/height"
            )
