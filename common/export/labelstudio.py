"""Label Studio tasks JSON, and the labelling config XML a project needs to show them.

Each data unit is a task with ``data.image``. Objects a run or pre-processor made
(they carry provenance) become ``predictions``, one per ``model_version`` (the
pre-processor and its version, else the run id), scored by the mean of their
objects' scores; objects people made become one ``annotations`` entry. Regions are
in percent of the image (RectangleLabels, PolygonLabels, KeyPointLabels) with
``original_width``/``original_height``; classifications are Choices. The config
names one control tag per region kind, with every label seen, next to the JSON as
``<name>.label_config.xml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, SubElement, indent, tostring

from common.export.jsonio import dumps
from common.export.native import NativeObject, class_name
from common.export.source import NO_SIZE, ExportItem
from common.export.summary import Tally
from common.export.writer import Writer

__all__ = ["CONTROLS", "LabelStudioWriter", "config_path", "config_view", "config_xml", "region_of"]

# Region kind: (result type, control tag, from_name, value key of its labels).
CONTROLS: dict[str, tuple[str, str, str, str]] = {
    "bbox": ("rectanglelabels", "RectangleLabels", "label", "rectanglelabels"),
    "polygon": ("polygonlabels", "PolygonLabels", "polygon", "polygonlabels"),
    "keypoint": ("keypointlabels", "KeyPointLabels", "keypoint", "keypointlabels"),
    "classification": ("choices", "Choices", "choice", "choices"),
}
_HUMAN = "annotations"


def config_path(target: Path) -> Path:
    """Where the labelling config of the tasks file ``target`` goes."""
    return target.with_name(f"{target.stem}.label_config.xml")


def _model_version(p: dict[str, Any]) -> str:
    pre, version = p.get("pre_processor"), p.get("pre_processor_version")
    if pre:
        return f"{pre}@{version}" if version else str(pre)
    return str(p.get("run_id") or f"annoflow-{p['method']}")


def _labels(obj: NativeObject) -> list[str]:
    raw = obj["properties"].get("choices" if obj["type"] == "classification" else "labels")
    if isinstance(raw, list) and raw and all(isinstance(v, str) for v in raw):
        return list(raw)
    return [class_name(obj)]


def region_of(obj: NativeObject, width: float | None, height: float | None) -> dict[str, Any] | str:
    """The object as a Label Studio result region, in percent of a ``width`` x ``height`` image; else why not."""
    kind = obj["type"]
    control = CONTROLS.get(kind)
    if control is None:
        return f"{kind} has no Label Studio image region"
    rtype, _, from_name, key = control
    region: dict[str, Any] = {"id": obj["id"], "type": rtype, "from_name": from_name, "to_name": "image"}
    value: dict[str, Any] = {key: _labels(obj)}
    if kind != "classification":
        if not (width and height):
            return NO_SIZE
        sx, sy = 100.0 / width, 100.0 / height
        c = obj["coordinates"]
        if kind == "bbox":
            value |= {"x": c["x"] * sx, "y": c["y"] * sy, "width": c["width"] * sx, "height": c["height"] * sy,
                      "rotation": c.get("rotation", 0)}  # fmt: skip
        elif kind == "polygon":
            value |= {"points": [[x * sx, y * sy] for x, y in c["points"]], "closed": True}
        else:
            value |= {"x": c["x"] * sx, "y": c["y"] * sy, "width": 0.5}
        region |= {"original_width": round(width), "original_height": round(height), "image_rotation": 0}
    region["value"] = value
    if "score" in obj:
        region["score"] = obj["score"]
    return region


def config_view(seen: dict[str, dict[str, None]]) -> Element:
    """A ``<View>`` with the image and one control per region kind in ``seen`` (kind -> labels); a box one if none."""
    view = Element("View")
    SubElement(view, "Image", name="image", value="$image")
    kinds = [k for k in CONTROLS if seen.get(k)] or ["bbox"]
    for kind in kinds:
        _, tag, from_name, _ = CONTROLS[kind]
        attrs = {"name": from_name, "toName": "image"}
        if kind == "classification":
            attrs["choice"] = "multiple"
        control = SubElement(view, tag, attrs)
        for name in seen.get(kind) or {"object": None}:
            SubElement(control, "Choice" if kind == "classification" else "Label", value=name)
    return view


def config_xml(view: Element) -> str:
    """The config as Label Studio takes it: indented XML text."""
    indent(view)
    return tostring(view, encoding="unicode") + "\n"


class LabelStudioWriter(Writer):
    """A Label Studio tasks JSON file and its labelling config."""

    name = "labelstudio"

    def __init__(self, target: Path, tally: Tally) -> None:
        super().__init__(target, tally)
        self._partial = target.with_name(target.name + ".partial")
        self.config = config_path(target)
        # Control kind -> label names in first-seen order (a dict as an ordered set).
        self.seen: dict[str, dict[str, None]] = {kind: {} for kind in CONTROLS}

    @staticmethod
    def companions(target: Path) -> list[Path]:
        return [config_path(target)]

    def open(self) -> None:
        self._out = self._partial.open("wb", buffering=1 << 20)
        self._out.write(b"[\n")
        self._first = True

    def _region(self, obj: NativeObject, item: ExportItem) -> dict[str, Any] | None:
        region = region_of(obj, item.width, item.height)
        if isinstance(region, str):
            self.tally.skip(region)
            return None
        seen = self.seen[obj["type"]]
        for name in region["value"][CONTROLS[obj["type"]][3]]:
            seen[name] = None
        self.classes.index(obj)
        return region

    def write(self, item: ExportItem) -> None:
        groups: dict[str, list[dict[str, Any]]] = {}
        scores: dict[str, list[float]] = {}
        for obj in item.objects:
            region = self._region(obj, item)
            if region is None:
                continue
            prov = obj.get("provenance")
            key = _HUMAN if prov is None else _model_version(prov)
            groups.setdefault(key, []).append(region)
            if "score" in obj:
                scores.setdefault(key, []).append(obj["score"])
            self.tally.objects += 1
        task: dict[str, Any] = {
            "data": {"image": item.image_url, "title": item.title, "data_hash": item.data_hash},
            "meta": {"annoflow": {"stage_uuid": item.stage_uuid, "status": item.status, "branch": item.branch}},
        }
        human = groups.pop(_HUMAN, None)
        if human:
            task["annotations"] = [{"result": human, "ground_truth": False}]
        task["predictions"] = [
            {"model_version": mv, "result": res, **({"score": sum(s) / len(s)} if (s := scores.get(mv)) else {})}
            for mv, res in groups.items()
        ]
        self._out.write(b"" if self._first else b",\n")
        self._out.write(dumps(task))
        self._first = False

    def labeling_config(self) -> str:
        """The ``<View>`` config: the image and one control tag per region kind seen, with its labels."""
        return config_xml(config_view(self.seen))

    def close(self) -> list[Path]:
        self._out.write(b"\n]\n")
        self._out.close()
        self._partial.replace(self.target)
        self.config.write_text(self.labeling_config(), encoding="utf-8")
        return [self.target, self.config]

    def abort(self) -> None:
        self._out.close()
        self._partial.unlink(missing_ok=True)
