"""annoflow objects <-> Label Studio regions, and the labelling config that names them.

The config is the export module's (:mod:`common.export.labelstudio`): an ``Image`` named ``image`` and
one control per region kind (``label``, ``polygon``, ``keypoint``, ``choice``); a review stage adds a
``review`` Choices control whose ``approve``/``reject`` decides the review action.
"""

from __future__ import annotations

import re
from typing import Any
from xml.etree.ElementTree import SubElement

from common.enums import Action
from common.export.labelstudio import CONTROLS, config_view, config_xml, region_of
from common.export.native import native_objects
from common.export.summary import Tally
from common.labelstudio.client import LabelStudioConfigError

__all__ = ["REVIEW", "check_config", "label_config", "objects_of", "regions_of", "review_action"]

REVIEW = "review"  # the from_name of the review decision
_KIND_OF = {from_name: kind for kind, (_, _, from_name, _) in CONTROLS.items()}


def label_config(labels: dict[str, dict[str, None]], review: bool) -> str:
    """The export's ``<View>`` for ``labels`` (region kind -> names) and, for review, the approve/reject decision."""
    view = config_view(labels)
    if review:
        choices = SubElement(view, "Choices", name=REVIEW, toName="image", choice="single", required="true")
        SubElement(choices, "Choice", value="approve")
        SubElement(choices, "Choice", value="reject")
    return config_xml(view)


def check_config(config: str, project_id: int, review: bool) -> None:
    """Raises: LabelStudioConfigError: the config lacks the image or controls annoflow maps."""
    problems = []
    if not re.search(r'<Image\b[^>]*\bname="image"', config):
        problems.append('no <Image name="image" value="$image"/>')
    if not any(re.search(rf'<{tag}\b[^>]*\bname="{name}"', config) for _, tag, name, _ in CONTROLS.values()):
        problems.append("none of the controls label, polygon, keypoint, choice")
    if review and not re.search(rf'<Choices\b[^>]*\bname="{REVIEW}"', config):
        problems.append(f'no <Choices name="{REVIEW}"> with approve and reject (a review stage needs it)')
    if problems:
        raise LabelStudioConfigError(
            f"Label Studio project {project_id} has a foreign labelling config ({'; '.join(problems)}); "
            "link without --ls-project to create one with annoflow's config"
        )


def regions_of(objects: list[dict[str, Any]], width: float | None, height: float | None) -> list[dict[str, Any]]:
    """A label row's objects as Label Studio result regions (as the export writes them); the rest left out."""
    regions = (region_of(obj, width, height) for obj in native_objects(objects, Tally()))
    return [r for r in regions if not isinstance(r, str)]


def objects_of(result: list[dict[str, Any]], annotator: str, annotation_id: int) -> list[dict[str, Any]]:
    """An annotation's regions as annoflow objects in pixels; ``properties`` name the annotator."""
    out: list[dict[str, Any]] = []
    for r in result:
        if r.get("from_name") == REVIEW or r.get("from_name") not in _KIND_OF:
            continue
        kind = _KIND_OF[str(r["from_name"])]
        v = r.get("value", {})
        key = CONTROLS[kind][3]
        labels = [str(x) for x in v.get(key, [])]
        obj: dict[str, Any] = {
            "id": str(r.get("id") or len(out)),
            "class_id": labels[0] if labels else kind,
            "type": kind,
            "properties": {"labels": labels, "annotator": annotator, "labelstudio_annotation": annotation_id},
        }
        w, h = float(r.get("original_width") or 0), float(r.get("original_height") or 0)
        sx, sy = w / 100.0, h / 100.0
        if kind == "bbox":
            obj["coordinates"] = {
                "x": v["x"] * sx,
                "y": v["y"] * sy,
                "width": v["width"] * sx,
                "height": v["height"] * sy,
            }
        elif kind == "polygon":
            obj["coordinates"] = {"points": [[x * sx, y * sy] for x, y in v["points"]]}
        elif kind == "keypoint":
            obj["coordinates"] = {"x": v["x"] * sx, "y": v["y"] * sy}
        else:
            obj["properties"]["choices"] = labels
        out.append(obj)
    return out


def review_action(result: list[dict[str, Any]]) -> Action | None:
    """APPROVE or REJECT as the ``review`` Choices says; None when the reviewer chose neither."""
    for r in result:
        if r.get("from_name") == REVIEW:
            chosen = r.get("value", {}).get("choices", [])
            if "approve" in chosen:
                return Action.APPROVE
            if "reject" in chosen:
                return Action.REJECT
    return None
