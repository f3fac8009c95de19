"""The two batch messages of the queue pipeline, as pydantic models (JSON only).

A *stage batch* goes from the producer to a stage queue: a :class:`BatchHeader`
plus the batch's ``TaskSpec`` JSON strings. A *result batch* goes from a worker
to the results queue: the same header plus one ``TaskCompletionResult`` per
spec. The header lets the result applier tell the producer which batch is done
(the in-flight ledger) without reading the results themselves.
"""

from __future__ import annotations

import json
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from common.models import TaskCompletionResult

__all__ = ["BatchHeader", "ResultBatch", "encode_result_batch"]


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
