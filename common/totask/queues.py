"""Where ToTask work travels: the work queues, the Celery task names, and the batch header.

A ToTask run publishes batches of ``TaskSpec`` JSON to the queue of its method, so model
workers can consume only inference::

    queue totask.file        task annoflow.totask.file
    queue totask.inference   task annoflow.totask.inference

Each run gets its own results queue (``totask.results.<run id>``): several runs may share
the workers, and each run's applier reads only its own answers. The header names it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from common.models import TaskCompletionResult

__all__ = [
    "FILE_QUEUE",
    "INFERENCE_QUEUE",
    "QUEUES",
    "TASK_NAMES",
    "TotaskHeader",
    "TotaskResults",
    "results_queue",
]

Method = Literal["file", "inference"]

FILE_QUEUE = "totask.file"
INFERENCE_QUEUE = "totask.inference"
QUEUES: dict[str, str] = {"file": FILE_QUEUE, "inference": INFERENCE_QUEUE}
TASK_NAMES: dict[str, str] = {"file": "annoflow.totask.file", "inference": "annoflow.totask.inference"}


def results_queue(run_id: str) -> str:
    """The queue a run's workers answer on."""
    return f"totask.results.{run_id}"


class TotaskHeader(BaseModel):
    """What identifies one published ToTask batch; the worker echoes it with the results."""

    model_config = ConfigDict(extra="ignore")

    batch_id: str
    run_id: str
    project_id: str
    method: Method
    size: int
    reply_to: str  # the run's results queue
    published_at: datetime


class TotaskResults(BaseModel):
    """One message on a run's results queue: every result of one batch, in the batch's order."""

    model_config = ConfigDict(extra="ignore")

    header: TotaskHeader
    worker: str = ""
    results: list[TaskCompletionResult] = Field(default_factory=list)
