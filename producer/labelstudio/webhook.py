"""One Label Studio webhook delivery: its annotation applied exactly once, reported, or ignored.

The payload is not trusted. It only names the annotation and the task; both are read again from
Label Studio, the Label Studio project comes from the task read back, and the annoflow link from
that project. :func:`common.labelstudio.apply_annotation` then applies the annotation once (its row
in ``labelstudio_applied``), so a webhook delivered twice changes nothing the second time.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from common.errors import InvalidInputError
from common.labelstudio import (
    WEBHOOK_ACTIONS,
    WEBHOOK_SECRET_HEADER,
    AnnotationSource,
    PullReport,
    apply_annotation,
    find_link,
)
from common.store import Store

__all__ = ["Delivery", "Outcome", "WebhookApp", "WebhookPayloadError", "WebhookSecretError"]

logger = logging.getLogger(__name__)


class WebhookPayloadError(InvalidInputError):
    """The request body is not a Label Studio annotation webhook (HTTP 400)."""


class WebhookSecretError(InvalidInputError):
    """The request lacks the shared secret the server was started with (HTTP 401)."""


class Outcome(str, Enum):
    """What one delivery did."""

    APPLIED = "applied"  # the annotation moved its task along, now
    UNCHANGED = "unchanged"  # applied before: a second delivery, or a pull got there first
    REPORTED = "reported"  # not applied, and why: the task moved on, no review decision, not a member
    IGNORED = "ignored"  # another action, a skipped annotation, a task annoflow did not push


@dataclass(frozen=True)
class Delivery:
    """The result of one webhook request; ``payload`` is the body as received (never used as the truth)."""

    outcome: Outcome
    detail: str
    annotation_id: int | None = None
    payload: dict[str, Any] = field(default_factory=dict, repr=False)

    def body(self) -> dict[str, Any]:
        """The small JSON answer Label Studio gets."""
        out: dict[str, Any] = {"result": self.outcome.value, "detail": self.detail}
        if self.annotation_id is not None:
            out["annotation"] = self.annotation_id
        return out


class WebhookApp:
    """Turns a webhook request body into a :class:`Delivery`; the HTTP side is :mod:`producer.labelstudio.server`.

    Args:
        store: the annoflow store holding the links.
        client: Label Studio, to read the annotation and the task back.
        secret: when not empty, a request must carry it in the X-Annoflow-Secret header.
        on_delivery: called with each delivery that named an annotation (the CLI prints them).
    """

    def __init__(
        self,
        store: Store,
        client: AnnotationSource,
        secret: str = "",
        on_delivery: Callable[[Delivery], None] | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self._secret = secret
        self._on_delivery = on_delivery

    def deliver(self, body: bytes, secret: str | None = None) -> Delivery:
        """Apply the annotation a webhook names, at most once.

        Raises:
            WebhookSecretError: a secret is configured and ``secret`` does not match it.
            WebhookPayloadError: the body is not JSON, or an annotation action names no annotation or task id.
            NotFoundError: the Label Studio project is linked to no stage, or Label Studio lost the annotation.
            LabelStudioUnreachableError: Label Studio does not answer.
        """
        if self._secret and not hmac.compare_digest((secret or "").encode(), self._secret.encode()):
            raise WebhookSecretError(
                f"missing or wrong {WEBHOOK_SECRET_HEADER} header; register the webhook with "
                "annoflow labelstudio hook under the same ANNOFLOW_LABELSTUDIO_WEBHOOK_SECRET"
            )
        payload = _parse(body)
        action = payload.get("action")
        if action not in WEBHOOK_ACTIONS:
            return Delivery(Outcome.IGNORED, f"action {action!r} is not one annoflow applies", payload=payload)
        ann_id, task_id = _ids(payload, str(action))
        annotation = self.client.annotation(ann_id)
        owner = annotation.get("task")
        if owner is not None and int(owner) != task_id:
            raise WebhookPayloadError(
                f"the payload names task {task_id} but annotation {ann_id} belongs to task {owner}; not applied"
            )
        ls_task = self.client.task(task_id)
        lnk = find_link(self.store, self.client.url, int(ls_task["project"]))
        report = PullReport()
        apply_annotation(self.store, self.client, lnk, ls_task, annotation, report)
        delivery = _delivery(report, ann_id, payload)
        log = logger.warning if delivery.outcome is Outcome.REPORTED else logger.info
        log("Label Studio annotation %s: %s: %s", ann_id, delivery.outcome.value, delivery.detail)
        if self._on_delivery is not None:
            self._on_delivery(delivery)
        return delivery


def _parse(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise WebhookPayloadError(f"the request body is not JSON ({e}); Label Studio webhooks post JSON") from e
    if not isinstance(payload, dict):
        raise WebhookPayloadError("the request body is not a JSON object; Label Studio webhooks post one")
    return payload


def _id(value: Any) -> int | None:
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _ids(payload: dict[str, Any], action: str) -> tuple[int, int]:
    annotation = payload.get("annotation")
    ann_id = _id(annotation)
    task_id = _id(payload.get("task"))
    if task_id is None and isinstance(annotation, dict):
        task_id = _id(annotation.get("task"))
    if ann_id is None or task_id is None:
        raise WebhookPayloadError(
            f"{action} payload without annotation.id and task.id; register the webhook with send_payload "
            "(annoflow labelstudio hook does)"
        )
    return ann_id, task_id


def _delivery(report: PullReport, ann_id: int, payload: dict[str, Any]) -> Delivery:
    if report.applied:
        return Delivery(Outcome.APPLIED, report.applied[0], ann_id, payload)
    if report.reported:
        return Delivery(Outcome.REPORTED, report.reported[0], ann_id, payload)
    if report.unchanged:
        return Delivery(Outcome.UNCHANGED, f"annotation {ann_id} was applied before", ann_id, payload)
    return Delivery(
        Outcome.IGNORED, f"annotation {ann_id} is skipped or of a task annoflow did not push", ann_id, payload
    )
