"""The Celery app of the queue pipeline, built the same way by producer, workers and applier.

JSON only (``accept_content=["json"]``), late acks, a lost worker's message is
put back, prefetch of one batch per child (a batch is already many tasks), soft
and hard time limits below the broker's visibility timeout, and worker task
events on so Flower can watch. Each agent stage gets its own queue and a task name that
reads well in Flower::

    queue  annoflow.<project>.<stage>          e.g. annoflow.apples.pre-label
    task   annoflow.stage.<project>.<stage>    e.g. annoflow.stage.apples.pre-label

Results come back on one queue, ``annoflow.results``; messages the applier
cannot read go to ``annoflow.dead-letter``.

Without ``ANNOFLOW_BROKER_URL`` the broker is kombu's filesystem transport under
``<home>/broker/`` (messages written atomically, :mod:`common.fs_transport`): no server,
and several processes can share it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from celery import Celery
from kombu.entity import Exchange, Queue
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common import fs_transport, redis_transport
from common.settings import Settings
from common.worker_events import FlushEventsOnStop, GroupedEvents

__all__ = [
    "DEAD_LETTER_QUEUE",
    "RESULTS_QUEUE",
    "PipelineSettings",
    "broker_transport",
    "broker_url",
    "make_celery_app",
    "make_queue",
    "publish_json",
    "stage_queue_name",
    "stage_task_name",
    "transport_options",
]

RESULTS_QUEUE = "annoflow.results"
DEAD_LETTER_QUEUE = "annoflow.dead-letter"


class PipelineSettings(BaseSettings):
    """Time limits and broker tuning, read once from ANNOFLOW_* variables at process start.

    Every process of one deployment must use the same values: the visibility
    timeout is applied by whichever client restores unacknowledged messages.
    """

    model_config = SettingsConfigDict(env_prefix="ANNOFLOW_", extra="ignore")

    # Seconds a batch may run before the handler gets SoftTimeLimitExceeded.
    soft_time_limit: float = Field(default=300.0, gt=0)
    # Seconds after which the child running the batch is killed.
    hard_time_limit: float = Field(default=360.0, gt=0)
    # Seconds an unacknowledged message stays hidden before Redis delivers it again.
    visibility_timeout: float = Field(default=3600.0, gt=0)
    # How often (seconds) consumers of the filesystem broker look for new messages.
    polling_interval: float = Field(default=0.05, gt=0)

    @model_validator(mode="after")
    def _limits_in_order(self) -> PipelineSettings:
        if self.soft_time_limit >= self.hard_time_limit:
            raise ValueError(
                f"ANNOFLOW_SOFT_TIME_LIMIT ({self.soft_time_limit:g}) must be below ANNOFLOW_HARD_TIME_LIMIT "
                f"({self.hard_time_limit:g}) so the handler is told before it is killed; lower the soft limit"
            )
        if self.hard_time_limit >= self.visibility_timeout:
            raise ValueError(
                f"ANNOFLOW_HARD_TIME_LIMIT ({self.hard_time_limit:g}) must be below ANNOFLOW_VISIBILITY_TIMEOUT "
                f"({self.visibility_timeout:g}), or a slow batch is delivered twice; raise the visibility timeout"
            )
        return self


def _slug(text: str) -> str:
    # Queue and task names stay readable and safe for every transport (file names included).
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "stage"


def stage_queue_name(project: str, stage_key: str) -> str:
    """The queue of one agent stage, from the names the runner module uses."""
    return f"annoflow.{_slug(project)}.{_slug(stage_key)}"


def stage_task_name(project: str, stage_key: str) -> str:
    """The Celery task name of one agent stage (what Flower shows)."""
    return f"annoflow.stage.{_slug(project)}.{_slug(stage_key)}"


def make_queue(name: str) -> Queue:
    """A durable direct queue bound to an exchange of the same name."""
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def publish_json(app: Celery, body: str, queue_name: str) -> None:
    """Publish a JSON message to one queue; kombu retries while the broker is unreachable.

    The default exchange delivers straight to the queue named by the routing key, as
    Celery does for direct queues: publishing through the queue's named exchange would
    cost a Redis lookup of its bindings per message. On Redis, once the queue is
    declared, the message is pushed straight to its list (:func:`redis_transport.push_json`).
    """
    if queue_name in _DECLARED and redis_transport.pushes_directly(app):
        redis_transport.push_json(app.conf.broker_url, queue_name, body)
        return
    # The default exchange needs no binding, so the queue is declared once per
    # process (for tools that list queues), not bound and copied for every message.
    declare = [] if queue_name in _DECLARED else [make_queue(queue_name)]
    with app.producer_or_acquire() as producer:
        producer.publish(
            body,
            exchange="",
            routing_key=queue_name,
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
            declare=declare,
            retry=True,
            retry_policy={"max_retries": 20, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 5},
        )
    _DECLARED.add(queue_name)


_DECLARED: set[str] = set()


def broker_url(settings: Settings) -> str:
    """The broker URL: ANNOFLOW_BROKER_URL, or the embedded filesystem broker."""
    return settings.broker_url or "filesystem://localhost/"


def transport_options(settings: Settings, pipeline: PipelineSettings) -> dict[str, Any]:
    """Broker transport options for kombu connections (Celery's and the applier's)."""
    url = broker_url(settings)
    if url.startswith("filesystem://"):
        folder = (Path(settings.home) / "broker").resolve()
        (folder / "queue").mkdir(parents=True, exist_ok=True)
        (folder / "control").mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "control_folder": str(folder / "control"),
            "polling_interval": pipeline.polling_interval,
        }
    return {"visibility_timeout": pipeline.visibility_timeout}


def broker_transport(url: str) -> str | None:
    """The kombu transport for ``url``: annoflow's own for Redis and the embedded broker, else the URL's.

    Redis keeps one client per channel (:mod:`common.redis_transport`); the embedded
    filesystem broker writes each message atomically (:mod:`common.fs_transport`).
    """
    if url.startswith("redis://"):
        return redis_transport.TRANSPORT
    if url.startswith("filesystem://"):
        return fs_transport.TRANSPORT
    return None


def make_celery_app(settings: Settings, pipeline: PipelineSettings, name: str = "annoflow") -> Celery:
    """Build the Celery app for this deployment.

    Args:
        settings: where the broker is.
        pipeline: time limits and broker tuning.
        name: the app's main name (shown in worker banners).

    Returns:
        An app that is not the process's current app, so tests can build several.
    """
    url = broker_url(settings)
    # Task events go to Flower in groups, one publish per 50 ms (common.worker_events).
    app = Celery(name, broker=url, set_as_current=False, events=GroupedEvents)
    app.steps["consumer"].add(FlushEventsOnStop)
    app.conf.update(
        broker_transport=broker_transport(url),
        task_serializer="json",
        result_serializer="json",
        event_serializer="json",
        accept_content=["json"],
        # Results go to the results queue as plain messages; Celery's backend is unused.
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One message is a batch of up to --task-batch-size tasks: prefetching more
        # would park work on one child while others idle.
        worker_prefetch_multiplier=1,
        task_soft_time_limit=pipeline.soft_time_limit,
        task_time_limit=pipeline.hard_time_limit,
        broker_transport_options=transport_options(settings, pipeline),
        broker_connection_retry_on_startup=True,
        worker_send_task_events=True,
        # Flower follows the workers' received/started/succeeded events. A "sent"
        # event per message would be one more Redis publish for every batch the
        # producer sends (half its round trips at --task-batch-size 1).
        task_send_sent_event=False,
        task_create_missing_queues=True,
        task_default_queue="annoflow.default",
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_disable_rate_limits=True,
    )
    return app


def run_worker(app: Celery, queues: list[str], *, concurrency: int, pool: str, loglevel: str, hostname: str) -> None:
    """Consume ``queues`` with ``app`` until the worker is stopped (SIGTERM: finish batches, exit)."""
    app.worker_main(
        argv=[
            "worker",
            "--queues",
            ",".join(queues),
            "--concurrency",
            str(concurrency),
            "--pool",
            pool,
            "--loglevel",
            loglevel,
            "--hostname",
            hostname,
            # Mingle and gossip only slow the start; Flower follows task events.
            "--without-mingle",
            "--without-gossip",
        ]
    )
