"""The two batch messages of the queue pipeline, as pydantic models (JSON only).

A *stage batch* goes from the producer to a stage queue: a :class:`BatchHeader`
plus the batch's ``TaskSpec`` JSON strings. A *result batch* goes from a worker
to the results queue: the same header plus one ``TaskCompletionResult`` per
spec. The header lets the result applier tell the producer which batch is done
(the in-flight ledger) without reading the results themselves.

On Redis a large stage batch travels by reference: its specs wait under a key
of their own (:func:`specs_key`, a JSON array) and the task message carries the
header alone (``specs_key`` set, specs ``None``). Celery's prefork parent then
reads, books as unacknowledged, decodes and hands to its child a message of a
few hundred bytes instead of tens of kilobytes of escaped JSON, and the worker
validates the whole array in one call. The applier deletes the key once the
batch is applied; it also expires shortly after the batch's lease deadline.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from common.errors import InvalidInputError
from common.models import TaskCompletionResult, TaskSpec

__all__ = [
    "INLINE_SPECS_BYTES",
    "SPECS_KEY_PREFIX",
    "BatchHeader",
    "ResultBatch",
    "encode_result_batch",
    "parse_specs",
    "specs_array",
    "specs_key",
]

SPECS_KEY_PREFIX = "annoflow:specs"
# Below this many bytes of specs a batch travels inside its message: a reference
# would cost the worker one more Redis round trip than it saves.
INLINE_SPECS_BYTES = 16 * 1024


class BatchHeader(BaseModel):
    """What identifies one published batch."""

    model_config = ConfigDict(extra="ignore")

    batch_id: str
    project_id: str
    project_name: str
    stage_uuid: str
    stage_key: str  # the stage as the runner names it (title or UUID)
    size: int
    published_at: datetime
    deadline: datetime  # the batch's lease deadline; past it the tasks are claimed again
    specs_key: str | None = None  # where the specs wait when the message carries none (Redis)


class ResultBatch(BaseModel):
    """One message on the results queue: every result of one stage batch."""

    model_config = ConfigDict(extra="ignore")

    header: BatchHeader
    worker: str = ""
    results: list[TaskCompletionResult] = Field(default_factory=list)


def encode_result_batch(header_json: str, worker: str, result_jsons: list[str]) -> str:
    """Serialise a :class:`ResultBatch` from JSON parts without parsing them again.

    The worker already holds each result as JSON (the QueueRunner returns
    strings), so joining them is cheaper than a parse-and-dump round trip; the
    applier validates the whole message with :meth:`ResultBatch.model_validate_json`.
    """
    return (
        '{"header":' + header_json + ',"worker":' + json.dumps(worker) + ',"results":[' + ",".join(result_jsons) + "]}"
    )


def specs_key(batch_id: str) -> str:
    """The Redis key of a stage batch's specs when they travel by reference."""
    return f"{SPECS_KEY_PREFIX}:{batch_id}"


def specs_array(specs: Sequence[str]) -> str:
    """Spec JSON texts as one JSON array (what :func:`specs_key` holds), without parsing them."""
    return "[" + ",".join(specs) + "]"


_SPEC_LIST: TypeAdapter[list[TaskSpec]] = TypeAdapter(list[TaskSpec])


def parse_specs(specs: Sequence[str] | bytes | str) -> list[TaskSpec]:
    """A stage batch's specs as models: from its message (a list of spec JSON texts) or a stored array.

    Raises:
        InvalidInputError: something in the batch is not a task spec.
    """
    try:
        if isinstance(specs, bytes | str):
            return _SPEC_LIST.validate_json(specs)
        return [TaskSpec.model_validate_json(s) for s in specs]
    except ValidationError as e:
        raise InvalidInputError(f"not a task spec: {e}; publish TaskSpec.model_dump_json() messages") from e
