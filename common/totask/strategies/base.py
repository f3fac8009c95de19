"""What both strategies share: reading a spec's parameters, provenance, and building results."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from common.errors import InvalidInputError
from common.models import LabelPayload, TaskCompletionResult, TaskSpec
from common.totask.formats import ConvertContext
from common.totask.objects import AnnotationObject, Provenance
from common.totask.params import RouteByConfidence, StrategyParams

__all__ = ["choose_pathway", "context_of", "failure", "now", "params_of", "stamp", "success"]


def now() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


def params_of(spec: TaskSpec, cache: dict[str, StrategyParams] | None = None) -> StrategyParams:
    """The strategy parameters a spec carries (validated once per run when a cache is given).

    Raises:
        InvalidInputError: the spec's ``params`` are not valid strategy parameters.
    """
    key = spec.run_id
    if cache is not None and key and key in cache:
        return cache[key]
    try:
        params = StrategyParams.model_validate(spec.params)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "params"
        raise InvalidInputError(
            f"task spec params invalid at {where}: {first['msg']}; the producer must send StrategyParams"
        ) from e
    if cache is not None and key:
        cache[key] = params
    return params


def _dim(meta: dict[str, Any], *keys: str) -> float | None:
    for k in keys:
        v = meta.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            return float(v)
    return None


def context_of(spec: TaskSpec, source: str) -> ConvertContext:
    """The task's image size (data-unit meta) and names, for converters and bounds checks."""
    names = [spec.data_title, *(f.original_name for f in spec.files.values() if f.is_primary)]
    return ConvertContext(
        width=_dim(spec.meta, "width", "image_width"),
        height=_dim(spec.meta, "height", "image_height"),
        names=tuple(n for n in names if n),
        source=source,
    )


def stamp(objects: Sequence[AnnotationObject], provenance: Provenance, id_prefix: str = "") -> list[dict[str, Any]]:
    """The objects as label-row JSON carrying the run's provenance (and, for predictions,
    run-unique ids): what :func:`success` writes."""
    prov = provenance.model_dump(mode="json", exclude_none=True)
    out = []
    for o in objects:
        wire = o.wire()
        wire["id"] = f"{id_prefix}{o.id}"
        wire["provenance"] = prov
        out.append(wire)
    return out


def _labels(spec: TaskSpec, new: list[dict[str, Any]]) -> LabelPayload:
    # With the current labels in the spec, keep what others made and replace only what this
    # run made before (a redelivered message) or what carries the same ids (a re-applied file).
    if spec.labels is None:
        return LabelPayload(branch=spec.label_branch_name, version=0, objects=new)
    ids = {o["id"] for o in new}
    kept = [
        o
        for o in spec.labels.objects
        if o.get("id") not in ids
        and not (spec.run_id and isinstance(o.get("provenance"), dict) and o["provenance"].get("run_id") == spec.run_id)
    ]
    return LabelPayload(branch=spec.labels.branch, version=spec.labels.version, objects=kept + new)


def success(
    spec: TaskSpec, objects: list[dict[str, Any]], started: datetime, pathway: UUID | None = None
) -> TaskCompletionResult:
    """A successful result carrying the task's new label row (``objects`` from :func:`stamp`)."""
    return TaskCompletionResult(
        task_uuid=spec.uuid,
        stage_uuid=spec.stage_uuid,
        success=True,
        pathway=pathway,
        lease_token=spec.lease_token,
        labels=_labels(spec, objects),
        run_id=spec.run_id,
        attempt=spec.attempt,
        started_at=started,
        finished_at=now(),
    )


def failure(spec: TaskSpec, error: str, started: datetime) -> TaskCompletionResult:
    """A failed result; the applier logs it as ``[Task N] Failed: <error>``."""
    return TaskCompletionResult.failed(spec, error, started_at=started, finished_at=now())


def choose_pathway(spec: TaskSpec, objects: Sequence[AnnotationObject], route: RouteByConfidence | None) -> UUID | None:
    """The pathway an agent-stage task takes by confidence; None outside agent stages.

    Raises:
        InvalidInputError: the route names a pathway the stage does not have.
    """
    if route is None or spec.kind != "agent":
        return None
    sure = bool(objects) and all(o.score is not None and o.score >= route.threshold for o in objects)
    name = route.high if sure else route.low
    if name not in spec.pathways:
        raise InvalidInputError(
            f"route pathway {name!r} is not a pathway of stage {spec.stage_title!r} "
            f"(it has {sorted(spec.pathways)}); fix the stage's route parameters"
        )
    return spec.pathways[name]
