"""Label Studio prediction JSON: regions in percent of the image, labels by name.

Accepted shapes: one prediction ``{"result": [...], "score"}``, a task with
``predictions``, an ML-backend ``/predict`` answer ``{"results": [...]}``, or a list
holding one of these. Regions carry ``original_width``/``original_height``; without them
the data unit's size converts percent to pixels.
"""

from __future__ import annotations

from typing import Any

from common.errors import InvalidInputError
from common.totask.formats.context import ConvertContext, Parsed
from common.totask.formats.native import parse_objects

__all__ = ["is_labelstudio", "parse_labelstudio", "prediction_of"]

_SKIPPED = {"relation"}  # links between regions, not regions
_REGIONS = {"rectanglelabels", "rectangle", "polygonlabels", "polygon", "keypointlabels", "keypoint", "choices"}


def prediction_of(data: Any) -> dict[str, Any] | None:
    """The single prediction dict inside any accepted shape, or None if there is none."""
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("result"), list):
        return data
    for key in ("predictions", "results"):
        inner = data.get(key)
        if (
            isinstance(inner, list)
            and inner
            and isinstance(inner[0], dict)
            and isinstance(inner[0].get("result"), list)
        ):
            return inner[0]
    return None


def is_labelstudio(data: Any) -> bool:
    """True when the data holds a Label Studio prediction."""
    return prediction_of(data) is not None


def _label(value: dict[str, Any], kind: str) -> tuple[str, list[str]]:
    labels = value.get(kind) or value.get("labels") or []
    labels = [str(v) for v in labels] if isinstance(labels, list) else [str(labels)]
    return (labels[0] if labels else "object"), labels


def _region(
    item: dict[str, Any], i: int, score: Any, ctx: ConvertContext, extras: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    kind = str(item.get("type", "")).lower()
    value = item.get("value") or {}
    if kind in _SKIPPED:
        return None
    if kind not in _REGIONS and str(item.get("id")) in extras:
        # Per-region extras (a textarea on a box) share the box's id: keep them as its properties.
        extras[str(item.get("id"))][kind] = value
        return None
    base: dict[str, Any] = {"id": str(item.get("id") or f"ls_{i + 1}"), "score": item.get("score", score)}
    if kind == "choices":
        choice, choices = _label(value, "choices")
        return {
            **base,
            "type": "classification",
            "class_id": choice,
            "properties": {"label": choice, "choices": choices},
        }
    w = item.get("original_width") or ctx.width
    h = item.get("original_height") or ctx.height
    if not w or not h:
        raise InvalidInputError(
            f"Label Studio region {base['id']} in {ctx.source} is in percent but the image size is unknown; "
            "add original_width/original_height or the data unit's meta width/height"
        )
    sx, sy = float(w) / 100.0, float(h) / 100.0
    props: dict[str, Any] = {"from_name": item.get("from_name"), "to_name": item.get("to_name")}
    if kind in ("rectanglelabels", "rectangle"):
        label, labels = _label(value, "rectanglelabels")
        coords = {"x": value.get("x", 0) * sx, "y": value.get("y", 0) * sy}
        coords |= {"width": value.get("width", 0) * sx, "height": value.get("height", 0) * sy}
        if value.get("rotation"):
            coords["rotation"] = value["rotation"]
        return {
            **base,
            "type": "bbox",
            "class_id": label,
            "coordinates": coords,
            "properties": {**props, "label": label, "labels": labels},
        }
    if kind in ("polygonlabels", "polygon"):
        label, labels = _label(value, "polygonlabels")
        pts = [[p[0] * sx, p[1] * sy] for p in value.get("points", []) if isinstance(p, list) and len(p) == 2]
        return {
            **base,
            "type": "polygon",
            "class_id": label,
            "coordinates": {"points": pts},
            "properties": {**props, "label": label, "labels": labels},
        }
    if kind in ("keypointlabels", "keypoint"):
        label, labels = _label(value, "keypointlabels")
        coords = {"x": value.get("x", 0) * sx, "y": value.get("y", 0) * sy}
        return {
            **base,
            "type": "keypoint",
            "class_id": label,
            "coordinates": coords,
            "properties": {**props, "label": label, "labels": labels},
        }
    raise InvalidInputError(
        f"Label Studio region type {kind!r} in {ctx.source} is not supported (rectanglelabels, polygonlabels, "
        "keypointlabels, choices are); convert it with a convert_data_from_file converter"
    )


def parse_labelstudio(data: Any, ctx: ConvertContext) -> Parsed:
    """Convert a Label Studio prediction into native objects in pixels.

    Raises:
        InvalidInputError: no prediction in the data, a region without a known image size,
            or an unsupported region type.
    """
    pred = prediction_of(data)
    if pred is None:
        raise InvalidInputError(f"Invalid annotation format in {ctx.source}: no Label Studio prediction 'result' list")
    items = [it for it in pred["result"] if isinstance(it, dict)]
    extras: dict[str, dict[str, Any]] = {
        str(it["id"]): {} for it in items if it.get("id") and str(it.get("type", "")).lower() in _REGIONS
    }
    regions = [r for i, item in enumerate(items) if (r := _region(item, i, pred.get("score"), ctx, extras))]
    for r in regions:
        r["properties"].update(extras.get(r["id"], {}))
    sizes = [(it.get("original_width"), it.get("original_height")) for it in pred["result"] if isinstance(it, dict)]
    w, h = next(((float(a), float(b)) for a, b in sizes if a and b), (None, None))
    return Parsed(parse_objects(regions, ctx), w, h)
