"""COCO annotation files: ``images``, ``annotations``, ``categories`` (and COCO result lists).

A file may describe many images; the task's own image is picked by file name (the data
unit's title or original file name), or is the only image in the file.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from common.errors import InvalidInputError
from common.totask.formats.context import ConvertContext, Parsed
from common.totask.formats.native import parse_objects

__all__ = ["is_coco", "parse_coco"]


def is_coco(data: Any) -> bool:
    """True for a COCO dataset dict or a COCO results list (``image_id`` + ``bbox``)."""
    if isinstance(data, dict):
        return isinstance(data.get("annotations"), list) and isinstance(data.get("images", []), list)
    return bool(data) and isinstance(data, list) and all(isinstance(a, dict) and "image_id" in a for a in data)


def _pick_image(images: list[dict[str, Any]], ctx: ConvertContext) -> dict[str, Any]:
    if len(images) == 1:
        return images[0]
    wanted = {PurePosixPath(n).name for n in ctx.names if n}
    for image in images:
        if PurePosixPath(str(image.get("file_name", ""))).name in wanted:
            return image
    raise InvalidInputError(
        f"COCO file {ctx.source} has {len(images)} images and none is named {sorted(wanted)}; "
        "name the image's file_name after the data unit's title or original file name"
    )


def _objects(ann: dict[str, Any], i: int, names: dict[Any, str]) -> list[dict[str, Any]]:
    cat = ann.get("category_id")
    props: dict[str, Any] = {"label": names[cat]} if cat in names else {}
    if ann.get("iscrowd"):
        props["iscrowd"] = True
    # annoflow's own export keeps each object's id, type, class id and properties in extras:
    # read back, a polygon or keypoint is that one object, not also the box COCO requires.
    extras = ann["annoflow"] if isinstance(ann.get("annoflow"), dict) else {}
    kind = extras.get("type")
    props.update(extras.get("properties") or {})
    class_id = extras.get("class_id", cat if cat is not None else 0)
    base = {"class_id": class_id, "properties": props, "score": ann.get("score")}
    ident = str(extras.get("id") or ann.get("id", i + 1))
    out: list[dict[str, Any]] = []
    bbox = ann.get("bbox")
    if isinstance(bbox, list) and len(bbox) == 4 and kind not in ("polygon", "keypoint"):
        x, y, w, h = bbox
        out.append({**base, "id": ident, "type": "bbox", "coordinates": {"x": x, "y": y, "width": w, "height": h}})
    seg = ann.get("segmentation")
    if isinstance(seg, list):  # RLE masks (dicts) are not polygons; they stay out
        polygons = [s for s in seg if isinstance(s, list)]
        for j, flat in enumerate(polygons):
            pts = [[flat[k], flat[k + 1]] for k in range(0, len(flat) - 1, 2)]
            pid = ident if kind == "polygon" and len(polygons) == 1 else f"{ident}-seg{j}"
            out.append({**base, "id": pid, "type": "polygon", "coordinates": {"points": pts}})
    kps = ann.get("keypoints")
    if isinstance(kps, list):
        for j in range(0, len(kps) - 2, 3):
            if kps[j + 2]:  # v=0: not labelled
                coords = {"x": kps[j], "y": kps[j + 1], "visibility": kps[j + 2]}
                kid = ident if kind == "keypoint" and len(kps) == 3 else f"{ident}-kp{j // 3}"
                out.append({**base, "id": kid, "type": "keypoint", "coordinates": coords})
    if not out:
        out.append({**base, "id": ident, "type": "classification"})
    return out


def parse_coco(data: Any, ctx: ConvertContext) -> Parsed:
    """Convert the annotations of this task's image in a COCO file.

    Raises:
        InvalidInputError: no image matches the task, or an annotation is invalid.
    """
    if isinstance(data, list):  # results list: all of one image, or we cannot tell which is ours
        image_ids = {a["image_id"] for a in data}
        if len(image_ids) > 1:
            raise InvalidInputError(
                f"COCO results in {ctx.source} cover {len(image_ids)} images; give one file per data unit"
            )
        images: list[dict[str, Any]] = [{"id": next(iter(image_ids))}]
        anns, cats = data, list[Any]()
    else:
        images, anns, cats = data.get("images") or [], data["annotations"], data.get("categories") or []
        if not images:
            image_ids = {a.get("image_id") for a in anns}
            images = [{"id": i} for i in image_ids] or [{"id": None}]
    image = _pick_image(images, ctx)
    names = {c.get("id"): str(c.get("name")) for c in cats if isinstance(c, dict)}
    mine = [a for a in anns if isinstance(a, dict) and a.get("image_id") == image.get("id")]
    raw = [o for i, a in enumerate(mine) for o in _objects(a, i, names)]
    w, h = image.get("width"), image.get("height")
    if isinstance(w, (int, float)) and isinstance(h, (int, float)) and w > 0 and h > 0:
        return Parsed(parse_objects(raw, ctx), float(w), float(h))
    return Parsed(parse_objects(raw, ctx))
