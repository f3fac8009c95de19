"""Annotation file formats: native, COCO, Label Studio, the converter hook, bounds and JSON limits."""

from __future__ import annotations

import json
from typing import Any

import pytest

from common.errors import InvalidInputError
from common.totask.download import parse_json
from common.totask.formats import ConvertContext, convert_data_from_file, detect_format, load_converter
from common.totask.objects import AnnotationObject, check_bounds

SEED_NATIVE = {
    "objects": [
        {
            "id": "obj_001",
            "class_id": 1,
            "type": "bbox",
            "coordinates": {"x": 100, "y": 150, "width": 200, "height": 180},
            "properties": {"confidence": 0.95, "label": "person"},
        }
    ]
}
CTX = ConvertContext(width=640, height=480, names=("img_001.jpg",), source="test.json")


def test_native_seed_object() -> None:
    # Given the seed's native example plus a polygon, polyline, keypoint and classification
    data = json.loads(json.dumps(SEED_NATIVE))
    data["objects"] += [
        {"id": "p", "class_id": 2, "type": "polygon", "coordinates": {"points": [[1, 1], [5, 1], {"x": 5, "y": 5}]}},
        {"id": "l", "class_id": 3, "type": "polyline", "coordinates": {"points": [[0, 0], [9, 9]]}},
        {"id": "k", "class_id": 4, "type": "keypoint", "coordinates": {"x": 3, "y": 4}},
        {"id": "c", "class_id": "indoor", "type": "classification"},
    ]
    # When converted
    parsed = convert_data_from_file(data, CTX)
    # Then every type is kept, points normalised, the confidence becomes the score
    assert detect_format(data) == "native"
    bbox, polygon, _, keypoint, cls = parsed.objects
    assert bbox.coordinates == {"x": 100.0, "y": 150.0, "width": 200.0, "height": 180.0}
    assert bbox.score == 0.95 and bbox.label == "person"
    assert polygon.coordinates["points"][2] == [5.0, 5.0]
    assert keypoint.type == "keypoint" and cls.class_id == "indoor"


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        (
            {"id": "a", "class_id": 1, "type": "bbox", "coordinates": {"x": 1, "y": 2, "width": "w", "height": 3}},
            "bbox width must be a number",
        ),
        (
            {"id": "b", "class_id": 1, "type": "polygon", "coordinates": {"points": [[0, 0], [1, 1]]}},
            "at least 3 points",
        ),
        ({"id": "c", "class_id": 1, "type": "circle", "coordinates": {}}, "objects[0] (c): type"),
    ],
)
def test_invalid_native_objects_name_the_object(obj: dict[str, Any], reason: str) -> None:
    # Given a file with one invalid object
    # When converted
    # Then the error names the file, the object and the reason
    with pytest.raises(InvalidInputError, match=r"Invalid annotation object in test\.json") as err:
        convert_data_from_file({"objects": [obj]}, CTX)
    assert reason in str(err.value)


def test_coco_picks_the_tasks_image() -> None:
    # Given a COCO file with two images and a bbox, a polygon and keypoints on ours
    coco = {
        "images": [
            {"id": 1, "file_name": "other.jpg"},
            {"id": 2, "file_name": "dir/img_001.jpg", "width": 640, "height": 480},
        ],
        "categories": [{"id": 7, "name": "cat"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 7, "bbox": [0, 0, 5, 5]},
            {
                "id": 11,
                "image_id": 2,
                "category_id": 7,
                "bbox": [10, 20, 30, 40],
                "segmentation": [[10, 20, 40, 20, 40, 60]],
                "keypoints": [12, 22, 2, 0, 0, 0],
            },
        ],
    }
    # When converted for the task named img_001.jpg
    parsed = convert_data_from_file(coco, CTX)
    # Then only image 2's objects come back, with category names and the declared size
    assert detect_format(coco) == "coco"
    assert [(o.id, o.type) for o in parsed.objects] == [("11", "bbox"), ("11-seg0", "polygon"), ("11-kp0", "keypoint")]
    assert parsed.objects[0].label == "cat" and parsed.objects[0].class_id == 7
    assert (parsed.width, parsed.height) == (640, 480)
    # And a task whose name matches no image fails with a fix
    with pytest.raises(InvalidInputError, match="none is named"):
        convert_data_from_file(coco, ConvertContext(names=("x.jpg",)))


def test_label_studio_prediction_to_pixels() -> None:
    # Given a Label Studio ML-backend answer: a rectangle with a per-region textarea, and a choice
    pred = {
        "results": [
            {
                "model_version": "v3",
                "score": 0.8,
                "result": [
                    {
                        "id": "r1",
                        "type": "rectanglelabels",
                        "from_name": "label",
                        "to_name": "image",
                        "original_width": 1000,
                        "original_height": 500,
                        "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rectanglelabels": ["Car"]},
                    },
                    {
                        "id": "r1",
                        "type": "textarea",
                        "from_name": "note",
                        "to_name": "image",
                        "value": {"text": ["blue"]},
                    },
                    {"id": "c1", "type": "choices", "value": {"choices": ["Street"]}, "score": 0.6},
                ],
            }
        ]
    }
    # When converted
    parsed = convert_data_from_file(pred, CTX)
    # Then percent becomes pixels of the original size, labels become classes, scores carry over
    assert detect_format(pred) == "labelstudio"
    box, choice = parsed.objects
    assert box.coordinates == {"x": 100.0, "y": 100.0, "width": 300.0, "height": 200.0}
    assert box.class_id == "Car" and box.score == 0.8 and box.properties["textarea"] == {"text": ["blue"]}
    assert choice.type == "classification" and choice.class_id == "Street" and choice.score == 0.6
    # And without any known size the percentages cannot be converted
    bare = {"result": [{"type": "rectanglelabels", "value": {"x": 1, "y": 1, "width": 1, "height": 1}}]}
    with pytest.raises(InvalidInputError, match="image size is unknown"):
        convert_data_from_file(bare, ConvertContext())


def shapes_converter(data: Any, context: ConvertContext) -> dict[str, Any]:
    """A user converter: {"shapes": [[x1, y1, x2, y2, name]]} to native objects."""
    return {
        "objects": [
            {
                "id": f"s{i}",
                "class_id": s[4],
                "type": "bbox",
                "coordinates": {"x": s[0], "y": s[1], "width": s[2] - s[0], "height": s[3] - s[1]},
            }
            for i, s in enumerate(data["shapes"])
        ]
    }


def test_user_converter_hook() -> None:
    # Given a format no built-in reader knows, and a converter named by module:function
    data = {"shapes": [[1, 2, 11, 22, "dog"]]}
    converter = load_converter(f"{__name__}:shapes_converter")
    # When converted without and with the converter
    with pytest.raises(InvalidInputError, match="not native"):
        convert_data_from_file(data, CTX)
    parsed = convert_data_from_file(data, CTX, converter)
    # Then the converter's native output is read
    assert parsed.objects[0].coordinates["width"] == 10 and parsed.objects[0].class_id == "dog"
    # And a converter that crashes or a bad reference fails with a fix
    with pytest.raises(InvalidInputError, match="converter failed"):
        convert_data_from_file({"nope": 1}, CTX, converter)
    with pytest.raises(InvalidInputError, match=r"package\.module:function"):
        load_converter("no_colon")


def test_coordinates_checked_against_image_size() -> None:
    # Given a box reaching past a 640x480 image
    parsed = convert_data_from_file(
        {
            "objects": [
                {
                    "id": "o",
                    "class_id": 1,
                    "type": "bbox",
                    "coordinates": {"x": 600, "y": 10, "width": 100, "height": 10},
                }
            ]
        },
        CTX,
    )
    # When checked with the size known, and unknown
    # Then only the known size refuses it
    with pytest.raises(InvalidInputError, match="Coordinates out of bounds: object 'o'"):
        check_bounds(parsed.objects, 640, 480)
    check_bounds(parsed.objects, None, None)


def test_json_parsing_limits() -> None:
    # Given broken JSON, JSON nested 100 deep and JSON nested 100000 deep
    # When parsed
    # Then each is refused with the seed's message; shallow JSON parses
    with pytest.raises(InvalidInputError, match=r"Invalid JSON format in annotation file f\.json: Expecting"):
        parse_json(b'{"objects": [', "f.json")
    with pytest.raises(InvalidInputError, match="nested deeper than 64 levels"):
        parse_json(b"[" * 100 + b"]" * 100, "f.json")
    with pytest.raises(InvalidInputError, match="Invalid JSON format in annotation file"):
        parse_json(b"[" * 100_000 + b"]" * 100_000, "f.json")
    assert parse_json(b'{"objects": []}', "f.json") == {"objects": []}


def test_wire_is_the_json_dump_of_every_object_type() -> None:
    # Given one object of each type, with and without score, properties and provenance
    raw = [
        {"id": "a", "class_id": 1, "type": "bbox", "coordinates": {"x": 1, "y": 2, "width": 3, "height": 4}},
        {"id": "b", "class_id": "car", "type": "polygon", "coordinates": {"points": [[1, 2], {"x": 3, "y": 4}, (5, 6)]},
         "properties": {"k": [1, 2]}, "score": 0.5, "provenance": {"method": "file", "run_id": "r"}},
        {"id": "c", "class_id": 2, "type": "polyline", "coordinates": {"points": [[0, 0], [1, 1]]}},
        {"id": "d", "class_id": 3, "type": "keypoint", "coordinates": {"x": 1.5, "y": 2}, "score": 0.0},
        {"id": "e", "class_id": 4, "type": "classification", "properties": {"label": "cat"}},
    ]  # fmt: skip
    for item in raw:
        obj = AnnotationObject.model_validate(item)
        # Then the hand-built label-row JSON is exactly pydantic's JSON dump
        assert obj.wire() == obj.model_dump(mode="json", exclude_none=True)


def test_bad_point_names_its_index_and_axis() -> None:
    # Given a polygon whose second point has a string y
    bad = {"id": "p", "class_id": 1, "type": "polygon", "coordinates": {"points": [[0, 0], [1, "2"], [3, 3]]}}
    # Then validation names the point and the axis
    with pytest.raises(ValueError, match=r"points\[1\]\[1\] must be a number, got '2'"):
        AnnotationObject.model_validate(bad)
