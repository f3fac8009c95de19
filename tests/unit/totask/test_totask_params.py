"""ToTask parameters: validation reports every invalid field at once; JSON and YAML files load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.errors import InvalidInputError, InvalidParametersError
from common.totask.params import ToTaskParams, load_params, validate_params

SEED_FILE = {
    "name": "Bulk_File_Annotation_Jan2025",
    "description": "Apply pre-generated annotations from external tool",
    "project": 123,
    "agent": 1,
    "task_filters": {"status": "pending", "data_collection": 456, "created_at__gte": "2025-01-01"},
    "method": "file",
    "target_specification_name": "external_annotations",
    "pre_processor_params": {},
}
SEED_INFERENCE = {
    "name": "AI_Object_Detection_v2",
    "project": 123,
    "agent": 1,
    "task_filters": {"status": "pending", "assignee": None, "data_collection": 789},
    "method": "inference",
    "pre_processor": 456,
    "pre_processor_params": {
        "confidence_threshold": 0.85,
        "nms_threshold": 0.5,
        "model_config": {"batch_size": 16, "device": "cuda", "use_fp16": True},
        "class_filter": [1, 2, 3],
        "min_object_size": 20,
    },
}


def test_seed_examples_validate() -> None:
    # Given the seed's file and inference examples
    # When they are validated
    file_params = validate_params(SEED_FILE)
    inf = validate_params(SEED_INFERENCE)
    # Then every field is kept, the numeric pre-processor id becomes a name, model_config is typed
    assert file_params.target_specification_name == "external_annotations"
    # And the seed's "pending" becomes the statuses of tasks nobody holds
    assert file_params.task_filters["status__in"] == ["NEW", "RELEASED", "REOPENED"]
    assert "status" not in file_params.task_filters
    assert inf.pre_processor == "456"
    pp = inf.pre_processor_params
    assert (pp.confidence_threshold, pp.nms_threshold, pp.min_object_size) == (0.85, 0.5, 20)
    assert pp.class_filter == [1, 2, 3]
    assert (pp.model_cfg.batch_size, pp.model_cfg.device, pp.model_cfg.use_fp16) == (16, "cuda", True)
    # And the worker's share round-trips through JSON with model_config under its public name
    wire = json.loads(inf.strategy_params().model_dump_json(by_alias=True))
    assert wire["pre_processor_params"]["model_config"]["batch_size"] == 16


def test_every_invalid_field_is_reported_at_once() -> None:
    # Given parameters wrong in six places, including a missing method-specific field
    bad = {
        "name": "has space",
        "project": 1,
        "task_filters": {"colour": "red"},
        "method": "file",
        "pre_processor_params": {"confidence_threshold": 1.5, "model_config": {"device": "tpu"}},
        "batch_size": 0,
    }
    # When they are validated
    with pytest.raises(InvalidParametersError) as err:
        validate_params(bad)
    # Then one error lists each problem with its field and reason
    problems = err.value.problems
    fields = [p.split(":", 1)[0] for p in problems]
    assert "name" in fields and "agent" in fields and "task_filters" in fields and "batch_size" in fields
    assert "pre_processor_params.confidence_threshold" in fields
    assert "pre_processor_params.model_config.device" in fields
    assert "target_specification_name" in fields
    assert any("whitespace" in p and "'has_space'" in p for p in problems)
    assert any("unknown task filter field 'colour'" in p for p in problems)
    assert any(p.startswith("agent: required") for p in problems)


def test_method_specific_requirements() -> None:
    # Given an inference run without a pre-processor, and a method that does not exist
    # When validated
    with pytest.raises(InvalidParametersError) as err:
        validate_params({**SEED_INFERENCE, "pre_processor": None})
    with pytest.raises(InvalidParametersError) as err2:
        validate_params({**SEED_FILE, "method": "magic"})
    # Then each says what is missing and how to fix it
    assert err.value.problems[0].startswith("pre_processor: required when method is 'inference'")
    assert "use 'file' or 'inference'" in err2.value.problems[0]


def test_blank_name_and_unknown_key() -> None:
    # Given a blank name and a misspelt parameter
    with pytest.raises(InvalidParametersError) as err:
        validate_params({**SEED_FILE, "name": "  ", "batchsize": 3})
    # Then both are reported
    assert any(p.startswith("name: must not be blank") for p in err.value.problems)
    assert any(p.startswith("batchsize: unknown parameter") for p in err.value.problems)


def test_post_processing_block_maps_to_thresholds() -> None:
    # Given the seed's nested post_processing block and pass-through keys
    params = {
        **SEED_INFERENCE,
        "pre_processor_params": {"post_processing": {"nms_threshold": 0.4, "min_size": 10}, "include_masks": True},
    }
    # When validated
    pp = validate_params(params).pre_processor_params
    # Then the thresholds land on their fields and unknown keys pass through to the pre-processor
    assert (pp.nms_threshold, pp.min_object_size) == (0.4, 10)
    assert pp.wire()["include_masks"] is True


def test_load_from_json_and_yaml(tmp_path: Path) -> None:
    # Given the same parameters as JSON and YAML files, and a broken file
    (tmp_path / "p.json").write_text(json.dumps(SEED_FILE))
    (tmp_path / "p.yaml").write_text(
        "name: Yaml_Run\nproject: apples\nagent: bot@acme.com\nmethod: inference\npre_processor: haar-face\n"
        "task_filters:\n  status__in: [NEW, REOPENED]\n  assignee: null\n"
    )
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    # When loaded
    from_json = load_params(tmp_path / "p.json")
    from_yaml = load_params(tmp_path / "p.yaml")
    # Then both validate, and the broken file is an input error naming the file
    assert isinstance(from_json, ToTaskParams) and from_json.name == SEED_FILE["name"]
    assert from_yaml.pre_processor == "haar-face" and from_yaml.task_filters["assignee"] is None
    with pytest.raises(InvalidInputError, match=r"bad\.yaml: not valid YAML"):
        load_params(tmp_path / "bad.yaml")
    with pytest.raises(InvalidInputError, match="cannot read"):
        load_params(tmp_path / "missing.json")
