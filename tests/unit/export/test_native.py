"""The stored objects an export reads: the hand check keeps what validation would, in the same form.

The export checks the native form by hand instead of building a pydantic model per
object; these tests hold it to what :class:`AnnotationObject` validation gives, for the
plain form and for each unusual one, and show the collector pause leaves the
collector as it found it.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from common.export import export_project
from common.export.native import NOT_NATIVE, native_objects
from common.export.summary import Tally
from common.export.writer import polygon_geometry
from common.models import LabelPayload
from common.runner.labels import LabelRowEditor
from common.store import Store
from common.totask.objects import AnnotationObject
from common.workflow import Workflow
from tests.unit.export.builders import OBJECTS, labelled_project

PROVENANCE = {"run_id": "r1", "method": "inference", "pre_processor": "det", "pre_processor_version": None}


def _validated(o: dict[str, Any]) -> dict[str, Any]:
    return AnnotationObject.model_validate(o).wire()


@pytest.mark.parametrize(
    "obj",
    [
        *(o for objs in OBJECTS.values() for o in objs),
        {
            "id": "s",
            "class_id": "ripe",
            "type": "bbox",
            "coordinates": {"x": 1, "y": 2, "width": 3, "height": 4},
            "score": 1,
            "provenance": PROVENANCE,
        },  # an integer score, a None in the provenance
        {"id": "n", "class_id": 1, "type": "keypoint", "coordinates": {"x": 1.5, "y": 2.5}, "score": None},
        {
            "id": "l",
            "class_id": 1,
            "type": "polyline",
            "coordinates": {"points": [[0, 0], [3, 4]]},
            "provenance": {"method": "file", "source": "s3://a.json", "extra": 7},
        },
        {"id": 5, "class_id": 1, "type": "bbox", "coordinates": {"x": 1, "y": 1, "width": 2, "height": 2}},
        {
            "id": "d",
            "class_id": 1,
            "type": "polygon",
            "coordinates": {"points": [{"x": 0, "y": 0}, {"x": 4, "y": 0}, {"x": 4, "y": 3}]},
        },
    ],
)
def test_a_valid_object_comes_out_as_validation_writes_it(obj: dict[str, Any]) -> None:
    # Given a stored object that validation accepts, when the export reads it
    tally = Tally()
    [read] = native_objects([dict(obj)], tally)

    # Then it equals the validated object's wire form (ids as text, scores as floats, no None), nothing skipped
    assert read == _validated(dict(obj)) and tally.skipped == {}
    assert all(v is not None for v in read.get("provenance", {}).values())


@pytest.mark.parametrize(
    "obj",
    [
        {"id": "b", "class_id": 1, "type": "bbox", "coordinates": {"x": 1, "y": 1, "width": -2, "height": 2}},
        {"id": "b", "class_id": 1, "type": "bbox", "coordinates": {"x": "1", "y": 1, "width": 2, "height": 2}},
        {"id": "b", "class_id": 1, "type": "bbox", "coordinates": None},
        {"id": "p", "class_id": 1, "type": "polygon", "coordinates": {"points": [[0, 0], [1, 1]]}},
        {"id": "k", "class_id": 1, "type": "keypoint", "coordinates": {"x": 1}},
        {"id": "c", "class_id": 1, "type": "circle"},
        {"id": "c", "class_id": 1, "type": ["bbox"]},
        {"id": "c", "class_id": 1, "type": "classification", "score": 1.5},
        {"id": "c", "class_id": 1, "type": "classification", "provenance": {"method": "guess"}},
        {"id": "c", "class_id": 1, "type": "classification", "provenance": {"method": "file", "run_id": 3}},
        {"id": "c", "class_id": 1, "type": "classification", "colour": "red"},
        ["not", "an", "object"],
    ],
)
def test_an_invalid_object_is_counted_not_written(obj: Any) -> None:
    # Given a stored object that validation refuses, when the export reads it beside a valid one
    tally = Tally()
    good = {"id": "g", "class_id": 1, "type": "classification"}
    read = native_objects([obj, good], tally)

    # Then only the valid one comes out and the other is counted as skipped
    assert [o["id"] for o in read] == ["g"] and tally.skipped == {NOT_NATIVE: 1}


def test_polygon_geometry_is_its_box_vertices_and_area() -> None:
    # Given a concave polygon, when its geometry is taken, then the box, flat vertices and area are right
    points = [[0.0, 0.0], [4.0, 0.0], [4.0, 3.0], [2.0, 1.0], [0.0, 3.0]]
    assert polygon_geometry(points) == (0.0, 0.0, 4.0, 3.0, [0, 0, 4, 0, 4, 3, 2, 1, 0, 3], 8.0)


@pytest.mark.parametrize("enabled", [True, False])
def test_an_export_leaves_the_collector_as_it_found_it(
    store: Store, seed_workflow: Workflow, tmp_path: Path, enabled: bool
) -> None:
    # Given the cyclic collector on (or off, as an embedding program chose)
    labelled_project(store, seed_workflow, tmp_path)
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        # When an export runs, and one fails midway
        export_project(store, "orchard", "coco", "ok.json", root=tmp_path)
        assert gc.isenabled() is enabled
        with pytest.raises(RuntimeError):
            export_project(store, "orchard", "coco", "x.json", root=tmp_path, on_progress=_fail)

        # Then the collector is as it was, and the failed export left no file behind
        assert gc.isenabled() is enabled
        assert not (tmp_path / "x.json").exists() and not list(tmp_path.glob("x.json*"))
    finally:
        (gc.enable if was else gc.disable)()


def _fail(done: int, total: int | None) -> None:
    assert not gc.isenabled()  # paused while the pages stream
    raise RuntimeError("stop")


def test_objects_a_stage_handler_added_export_with_their_hash_as_id() -> None:
    # Given objects a handler added through its LabelRowEditor (keyed by object_hash, no id), one already with an id
    editor = LabelRowEditor(LabelPayload())
    box = {"class_id": "blob", "type": "bbox", "score": 0.5, "coordinates": {"x": 4, "y": 8, "width": 12, "height": 6}}
    first = editor.add(box)
    editor.add({"id": "kept", "class_id": "measurements", "type": "classification"})

    # When the export reads the row
    tally = Tally()
    read = native_objects(editor.objects, tally)

    # Then both come out, the hash as the id where there was none, the key itself not written, nothing skipped
    assert [o["id"] for o in read] == [first, "kept"]
    assert all("object_hash" not in o for o in read) and tally.skipped == {}
    assert read[0]["coordinates"] == box["coordinates"]
