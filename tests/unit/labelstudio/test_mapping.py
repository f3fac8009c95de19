"""annoflow objects -> Label Studio regions (what push sends) -> objects (what pull saves): the same shapes."""

from __future__ import annotations

from typing import Any

import pytest

from common.enums import Action
from common.labelstudio import LabelStudioConfigError
from common.labelstudio.mapping import check_config, label_config, objects_of, regions_of, review_action

W, H = 200.0, 100.0
OBJECTS: list[dict[str, Any]] = [
    {"id": "b", "class_id": "apple", "type": "bbox", "score": 0.9,
     "coordinates": {"x": 20, "y": 10, "width": 100, "height": 50}},
    {"id": "p", "class_id": "leaf", "type": "polygon", "coordinates": {"points": [[0, 0], [50, 0], [50, 25]]}},
    {"id": "k", "class_id": "stem", "type": "keypoint", "coordinates": {"x": 100, "y": 50}},
    {"id": "c", "class_id": "ripe", "type": "classification"},
]  # fmt: skip


def test_every_region_kind_is_pushed_and_pulled_back_to_the_same_object() -> None:
    # Given a label row with a box, a polygon, a keypoint and a classification, pushed as regions
    regions = regions_of([dict(o) for o in OBJECTS], W, H)

    # Then each is a region of its control, in percent, the box with its score
    assert [(r["type"], r["from_name"]) for r in regions] == [
        ("rectanglelabels", "label"),
        ("polygonlabels", "polygon"),
        ("keypointlabels", "keypoint"),
        ("choices", "choice"),
    ]
    assert regions[0]["value"]["x"] == 10.0 and regions[0]["value"]["width"] == 50.0 and regions[0]["score"] == 0.9

    # When an annotator submits them unchanged and the annotation is pulled
    back = objects_of(regions, "ann@annoflow.test", 7)

    # Then the objects have the same kinds, classes and pixel coordinates, with the annotator as provenance
    assert [(o["type"], o["class_id"]) for o in back] == [(o["type"], o["class_id"]) for o in OBJECTS]
    assert back[0]["coordinates"] == {"x": 20.0, "y": 10.0, "width": 100.0, "height": 50.0}
    assert back[1]["coordinates"] == {"points": [[0.0, 0.0], [50.0, 0.0], [50.0, 25.0]]}
    assert back[2]["coordinates"] == {"x": 100.0, "y": 50.0}
    assert all(o["properties"]["annotator"] == "ann@annoflow.test" for o in back)


def test_objects_without_a_region_or_an_image_size_are_left_out() -> None:
    # Given a polyline (no Label Studio image region), a malformed object, and boxes with no image size
    odd = [
        {"id": "l", "class_id": 1, "type": "polyline", "coordinates": {"points": [[0, 0], [1, 1]]}},
        {"id": "x", "class_id": 1, "type": "bbox", "coordinates": {"x": "1"}},
    ]

    # Then nothing is sent for them, and a classification needs no size
    assert regions_of(odd, W, H) == []
    assert [r["type"] for r in regions_of([dict(o) for o in OBJECTS], None, None)] == ["choices"]


def test_a_new_project_config_names_every_kind_seen_and_a_review_decision() -> None:
    # Given the labels seen per kind, when a review stage's config is built
    config = label_config({"bbox": {"apple": None}, "polygon": {"leaf": None}}, review=True)

    # Then it holds a control per kind with its labels, the approve/reject choice, and passes the config check
    assert '<RectangleLabels name="label"' in config and '<Label value="apple"' in config
    assert '<PolygonLabels name="polygon"' in config and '<Label value="leaf"' in config
    assert '<Choices name="review"' in config and 'value="reject"' in config
    check_config(config, 1, review=True)
    with pytest.raises(LabelStudioConfigError, match="review"):
        check_config(label_config({"bbox": {"apple": None}}, review=False), 2, review=True)


@pytest.mark.parametrize(("chosen", "action"), [(["approve"], Action.APPROVE), (["reject"], Action.REJECT), ([], None)])
def test_the_review_choice_decides_the_action(chosen: list[str], action: Action | None) -> None:
    result = [{"from_name": "review", "type": "choices", "value": {"choices": chosen}}]
    assert review_action(result) is action
