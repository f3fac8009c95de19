"""ToTask run parameters: validated with pydantic, every invalid field reported at once.

``ToTaskParams`` is what a user writes (JSON or YAML); ``StrategyParams`` is the part a
worker needs to annotate one task, carried in ``TaskSpec.params``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from common.errors import InvalidInputError, InvalidParametersError
from common.store.filters import compile_filters

__all__ = [
    "ModelConfig",
    "PreProcessorParams",
    "RouteByConfidence",
    "StrategyParams",
    "ToTaskParams",
    "load_params",
    "normalise_filters",
    "validate_params",
]

Method = Literal["file", "inference"]
# The seed's status words, mapped onto annoflow's task statuses.
STATUS_ALIASES: dict[str, list[str]] = {
    "pending": ["NEW", "RELEASED", "REOPENED"],  # waiting for someone, nobody holds it
    "in_progress": ["ASSIGNED"],
}
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class ModelConfig(BaseModel):
    """How a pre-processor runs its model."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(16, ge=1, le=1024, description="images per predict() call")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    use_fp16: bool = False

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(f"unknown device {value!r}; use auto, cpu, cuda, cuda:N or mps")
        return value


class PreProcessorParams(BaseModel):
    """Inference thresholds and post-processing; unknown keys pass through to the pre-processor."""

    # Extra keys (include_masks, output_format, ...) belong to the pre-processor, not to us.
    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())

    confidence_threshold: float | None = Field(None, ge=0.0, le=1.0)
    nms_threshold: float | None = Field(None, gt=0.0, le=1.0)
    class_filter: list[int | str] | None = None
    min_object_size: float | None = Field(None, ge=0.0, description="pixels; shorter bbox side")
    max_objects: int | None = Field(None, ge=1)
    model_cfg: ModelConfig = Field(default_factory=ModelConfig, alias="model_config")
    inference_timeout: float = Field(120.0, gt=0.0, description="seconds for one predict() call")

    @model_validator(mode="before")
    @classmethod
    def _post_processing(cls, data: Any) -> Any:
        # The seed also nests thresholds under post_processing {nms_threshold, min_size}.
        if isinstance(data, dict) and isinstance(data.get("post_processing"), dict):
            data = dict(data)
            post = data.pop("post_processing")
            data.setdefault("nms_threshold", post.get("nms_threshold"))
            data.setdefault("min_object_size", post.get("min_size", post.get("min_object_size")))
        return data

    def wire(self) -> dict[str, Any]:
        """The parameters as JSON-ready data, ``model_config`` under its public name."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class RouteByConfidence(BaseModel):
    """In an agent stage: which pathway a task takes by how sure the model was.

    A task whose every object scores at least ``threshold`` (and has one) takes ``high``;
    the rest take ``low`` (the active-learning flow: sure ones to Complete, others to Review).
    """

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(ge=0.0, le=1.0)
    high: str
    low: str


class StrategyParams(BaseModel):
    """What a worker needs to annotate one task; travels in ``TaskSpec.params``."""

    model_config = ConfigDict(extra="ignore")

    method: Method
    target_specification_name: str | None = None
    pre_processor: str | None = None
    pre_processor_params: PreProcessorParams = Field(default_factory=PreProcessorParams)
    converter: str | None = Field(None, description="'module:function' user converter for annotation files")
    route: RouteByConfidence | None = None

    @field_validator("pre_processor", mode="before")
    @classmethod
    def _pre_processor(cls, value: Any) -> Any:
        # The seed names pre-processors by numeric release id; we key them by string.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _method_needs(self) -> StrategyParams:
        problems = _method_problems(self.method, self.target_specification_name, self.pre_processor)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ToTaskParams(StrategyParams):
    """One ToTask run, as the user writes it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    project: str | int
    agent: str | int
    task_filters: dict[str, Any] = Field(default_factory=dict)
    batch_size: int = Field(100, ge=1, le=10_000, description="tasks per queue message")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank; give the run a name like 'Bulk_File_Annotation'")
        if any(ch.isspace() for ch in value):
            raise ValueError(f"{value!r} contains whitespace; use '_' instead, e.g. {'_'.join(value.split())!r}")
        return value

    @field_validator("task_filters")
    @classmethod
    def _filters(cls, value: dict[str, Any]) -> dict[str, Any]:
        value = normalise_filters(value)
        try:
            compile_filters(value)
        except InvalidInputError as e:
            raise ValueError(str(e)) from e
        return value

    def strategy_params(self) -> StrategyParams:
        """The worker's share of these parameters."""
        return StrategyParams.model_validate(self.model_dump(by_alias=True))


def normalise_filters(filters: dict[str, Any]) -> dict[str, Any]:
    """Rewrite the seed's status words (``pending``, ``in_progress``) to annoflow statuses."""
    out = dict(filters)
    for key in ("status", "status__exact", "status__in"):
        if key not in out:
            continue
        raw = out.pop(key)
        values = raw if key == "status__in" and isinstance(raw, list) else [raw]
        if key != "status__in" and not (isinstance(raw, str) and raw.lower() in STATUS_ALIASES):
            out[key] = raw  # a plain status: leave it to the store's own check
            continue
        mapped: list[Any] = []
        for v in values:
            mapped += STATUS_ALIASES.get(v.lower(), [v]) if isinstance(v, str) else [v]
        out["status__in"] = list(dict.fromkeys(out.get("status__in", []) + mapped))
    return out


def _method_problems(method: str | None, target: str | None, pre_processor: Any) -> list[str]:
    problems = []
    if method == "file" and not target:
        problems.append(
            "target_specification_name: required when method is 'file'; "
            "name the data-unit file specification that holds the annotation JSON"
        )
    if method == "inference" and (pre_processor is None or pre_processor == ""):
        problems.append(
            "pre_processor: required when method is 'inference'; give a registered pre-processor name "
            "(e.g. 'haar-face'), a 'module:Class' plugin or an http(s):// model server URL"
        )
    return problems


def _describe(err: Any) -> str:
    loc = ".".join(str(p) for p in err["loc"]) or "parameters"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "missing":
        msg = "required; add it"
    elif err["type"] == "extra_forbidden":
        msg = "unknown parameter; remove it or check its spelling"
    elif err["type"] == "literal_error" and loc == "method":
        msg = f"{err.get('input')!r} is not a method; use 'file' or 'inference'"
    return f"{loc}: {msg}"


def validate_params(data: Any, source: str = "ToTask parameters") -> ToTaskParams:
    """Validate raw parameters, collecting every problem before raising.

    Raises:
        InvalidParametersError: one error listing each invalid field with its reason.
    """
    if not isinstance(data, dict):
        raise InvalidParametersError(source, [f"expected a mapping of parameters, got {type(data).__name__}"])
    try:
        return ToTaskParams.model_validate(data)
    except ValidationError as e:
        problems = [_describe(err) for err in e.errors() if err["loc"]]
        # Cross-field rules run only once the fields are valid; check them on the raw data
        # too, so the user sees every problem in one go.
        for extra in _method_problems(
            data.get("method"), data.get("target_specification_name"), data.get("pre_processor")
        ):
            if extra.split(":", 1)[0] not in {p.split(":", 1)[0] for p in problems}:
                problems.append(extra)
        if not problems:
            problems = [_describe(err) for err in e.errors()]
        raise InvalidParametersError(source, problems) from e


def load_params(path: str | Path) -> ToTaskParams:
    """Read and validate parameters from a .json, .yaml or .yml file.

    Raises:
        InvalidInputError: the file is missing or unreadable as JSON/YAML.
        InvalidParametersError: the parameters are invalid (every problem listed).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise InvalidInputError(f"cannot read ToTask parameters {p}: {e.strerror}; check the path") from e
    try:
        data = yaml.safe_load(text) if p.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise InvalidInputError(f"{p}: not valid {p.suffix.lstrip('.').upper() or 'JSON'}: {e}; fix the syntax") from e
    return validate_params(data, source=str(p))
