"""The Celery tasks of a worker: run a stage batch through its handler, publish one results message.

One task is registered per agent stage (``annoflow.stage.<project>.<stage>``)
so Flower shows which stage a batch belongs to. The handlers themselves are
loaded in each pool child after fork (``worker_process_init``), never in the
parent. Workers hold no store credentials: everything a handler needs is in
the specs, and everything it decides goes back in the results.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init
from pydantic import ValidationError

from common import redis_transport
from common.batches import encode_result_batch, parse_specs
from common.celery_app import RESULTS_QUEUE, publish_json, stage_task_name
from common.errors import InvalidInputError
from common.gc_tuning import tune_gc
from common.loader import StageInfo, agents_of, load_runner
from common.models import SpecIdentity, TaskCompletionResult, TaskSpec

__all__ = ["failure_results", "publish_results", "register_noop_task", "register_stage_tasks", "split_readable"]

log = logging.getLogger("annoflow.worker")

# The runner of this process (a pool child, or the worker itself with the solo pool).
_loaded: dict[str, Any] = {}


def _load_agents(ref: str) -> dict[str, Any]:
    if ref not in _loaded:
        runner = load_runner(ref)
        _loaded[ref] = {a.stage_key: a for a in agents_of(runner)}
        log.info("process %s loaded handlers from %s: %s", os.getpid(), ref, ", ".join(_loaded[ref]))
    agents: dict[str, Any] = _loaded[ref]
    return agents


def failure_results(specs: Sequence[TaskSpec], error: str, worker: str) -> list[str]:
    """One failed ``TaskCompletionResult`` per spec, for a batch the handler could not answer."""
    at = datetime.now(UTC)
    return [TaskCompletionResult.failed(s, error, finished_at=at, worker=worker).model_dump_json() for s in specs]


def publish_results(app: Celery, header: dict[str, Any], results: list[str], worker: str) -> None:
    """Publish one results message for a batch; kombu retries while the broker is unreachable."""
    publish_json(app, encode_result_batch(json.dumps(header), worker, results), RESULTS_QUEUE)


def _batch_texts(app: Celery, header: dict[str, Any], specs: list[str] | None) -> list[str] | bytes | None:
    """The batch's spec texts: in the message, or (a large batch on Redis) under the header's ``specs_key``."""
    if specs is not None:
        return specs
    key = header.get("specs_key")
    payload = redis_transport.fetch(app.conf.broker_url, key) if isinstance(key, str) else None
    if payload is None:
        # Deleted once the batch was applied (this is a second delivery), or expired past its
        # lease deadline (its tasks are claimed again): either way there is nothing to run.
        log.warning(
            "batch %s has no specs at %s (applied already, or past its lease); skipped", header.get("batch_id"), key
        )
    return payload


def split_readable(texts: list[str] | bytes, worker: str) -> tuple[list[TaskSpec], list[str]]:
    """A batch with specs that are not valid: the valid ones to run, and a failed result for each other one.

    A spec that still names its task and lease is answered with the reason: the
    applier then retries and finally fails that task (``annoflow tasks failed``
    lists it) instead of its lease expiring and the same spec coming back
    forever. One that does not is logged and left to its lease.
    """
    try:
        items: Any = json.loads(texts) if isinstance(texts, bytes) else [json.loads(t) for t in texts]
    except (ValueError, TypeError) as e:
        log.error("a batch's specs are not JSON (%s); its tasks wait for their leases to expire", e)
        return [], []
    at = datetime.now(UTC)
    readable: list[TaskSpec] = []
    failed: list[str] = []
    for item in items if isinstance(items, list) else []:
        try:
            readable.append(TaskSpec.model_validate(item))
            continue
        except ValidationError as e:
            error = f"not a task spec: {e}; the producer and the workers must run the same annoflow version"
        try:
            identity = SpecIdentity.model_validate(item)
        except ValidationError:
            log.error("a spec names no task and lease; it waits for its lease to expire: %s", error)
            continue
        log.error("task %s: %s", identity.uuid, error)
        failed.append(TaskCompletionResult.failed(identity, error, finished_at=at, worker=worker).model_dump_json())
    return readable, failed


def _run_batch(app: Celery, ref: str, stage_key: str, header: dict[str, Any], specs: list[str] | None) -> int:
    worker = f"{socket.gethostname()}:{os.getpid()}"
    texts = _batch_texts(app, header, specs)
    if texts is None:
        return 0
    unreadable: list[str] = []
    try:
        parsed = parse_specs(texts)
    except InvalidInputError:
        # Sending the batch again would not change a spec: run what can be read, answer the rest.
        parsed, unreadable = split_readable(texts, worker)
    try:
        agent = _load_agents(ref)[stage_key]
        results = agent.run_specs_json(parsed)
    except SoftTimeLimitExceeded:
        # Raised outside any one handler (the QueueRunner turns a handler's own
        # timeout into that task's failure): answer every task so none waits for its lease.
        limit = app.conf.task_soft_time_limit
        results = failure_results(
            parsed,
            f"the batch ran past the soft time limit ({limit}s); raise it "
            "(ANNOFLOW_SOFT_TIME_LIMIT) or make the handler faster",
            worker,
        )
    except Exception as e:  # a handler must not leave its tasks unanswered
        log.exception("batch %s of stage %s failed as a whole", header.get("batch_id"), stage_key)
        results = failure_results(parsed, f"{type(e).__name__}: {e}", worker)
    results += unreadable
    publish_results(app, header, results, worker)  # even empty: the applier counts the batch as answered
    return len(results)


def register_stage_tasks(app: Celery, project: str, stages: Sequence[StageInfo], ref: str) -> list[str]:
    """Register one Celery task per agent stage; return their names.

    The handlers load in each pool child when it starts (``worker_process_init``)
    or, with the solo pool, on the first batch.
    """
    names = []
    for info in stages:
        name = stage_task_name(project, info.stage_key)

        def run(header: dict[str, Any], specs: list[str] | None, _key: str = info.stage_key) -> int:
            return _run_batch(app, ref, _key, header, specs)

        # Celery builds a signature checker from the function's name: keep it an identifier.
        run.__name__ = run.__qualname__ = "run_" + name.replace(".", "_").replace("-", "_")
        app.task(name=name, acks_late=True, reject_on_worker_lost=True)(run)
        names.append(name)

    def _load_in_child(**_: Any) -> None:
        _load_agents(ref)
        tune_gc()  # the handlers' modules and models are loaded: out of the collector's way

    worker_process_init.connect(_load_in_child, weak=False)

    return names


def register_noop_task(app: Celery, counter_url: str) -> str:
    """The benchmark's baseline: a no-op task that only counts itself in Redis (so the bench sees it finish)."""
    import redis

    client: list[redis.Redis] = []
    name = "annoflow.bench.noop"

    def noop(key: str) -> None:
        if not client:
            client.append(redis.Redis.from_url(counter_url))
        client[0].incr(key)

    app.task(name=name, acks_late=True)(noop)
    return name
