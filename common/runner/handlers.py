"""A registered stage handler: run it on task specs, always answer with a result.

What a handler may return:

* a pathway name or UUID (``str`` or ``uuid.UUID``): the task moves along it;
* ``None``: the task stays in the stage (and is taken again on the next refresh);
* :class:`HandlerResult`: a pathway (or None), a label row to save, a priority.

An exception, an unknown pathway or anything else returned becomes a failed
``TaskCompletionResult`` with the error text; the wrapped function never
raises for a handler failure.
"""

from __future__ import annotations

import functools
import math
import numbers
import os
import socket
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, overload
from uuid import UUID

from billiard.exceptions import SoftTimeLimitExceeded
from pydantic import ValidationError
from pydantic_core import PydanticSerializationError, to_json

from common.batches import parse_specs
from common.models import LabelPayload, TaskCompletionResult, TaskSpec
from common.runner.assets import fetch_assets
from common.runner.context import TaskContext
from common.runner.dependencies import Dependant, analyze, dep_asset, solve
from common.runner.labels import LabelRowEditor
from common.workflow_graph import canonical_key

__all__ = ["HandlerResult", "SpecSource", "StageAgent"]

_ERROR_CHARS = 4000  # keep the end of a traceback: that is where the cause is
_WORKER = f"{socket.gethostname()}:{os.getpid()}"


class SpecSource(Protocol):
    """What a stage agent asks its runner for: claimed specs of its stage (the runners implement it)."""

    def claim_specs(
        self, agent: StageAgent, *, batch_size: int, limit: int | None = None, lease_seconds: float = 600.0
    ) -> Iterator[list[TaskSpec]]:
        """Claim the agent stage's waiting tasks batch by batch and yield their specs."""
        ...


@dataclass
class HandlerResult:
    """A handler's full answer: where the task goes, its labels and its priority (0.0 is valid)."""

    pathway: str | UUID | None = None
    label_row: LabelRowEditor | LabelPayload | None = None
    priority: float | None = None


class _HandlerError(Exception):
    """A handler's answer cannot be used; the message goes in the failed result."""


def _now() -> datetime:
    return datetime.now(UTC)


def resolve_pathway(spec: TaskSpec, pathway: str | UUID) -> UUID:
    """The UUID of the pathway a handler named, from the stage's pathways in the spec."""
    key = str(pathway)
    if key in spec.pathways:
        return spec.pathways[key]
    canonical = key if isinstance(pathway, UUID) else canonical_key(key)
    for uid in spec.pathways.values():
        if str(uid) == canonical:
            return uid
    names = ", ".join(f"'{n}' ({u})" for n, u in spec.pathways.items()) or "none"
    raise _HandlerError(
        f"stage '{spec.stage_title}' has no pathway '{key}'; return one of its pathways: {names}, or None to stay"
    )


def _plain(value: Any) -> Any:
    """A value JSON has no type for, as plain data: numpy's scalars and arrays (a model's output)."""
    if callable(getattr(value, "tolist", None)):
        return value.tolist()
    raise TypeError(f"a {type(value).__name__} cannot be stored in a label row; use numbers, text, lists and dicts")


def _payload(label_row: LabelRowEditor | LabelPayload | dict[str, Any] | None) -> LabelPayload | None:
    """The label row a handler handed back, as the payload a result carries.

    It goes through JSON here, inside the task's own failure handling: numpy
    values become the numbers the store and the wire hold, and a payload
    changed after it was built is checked again. What cannot be written
    fails this task alone, not its whole batch.
    """
    if label_row is None:
        return None
    if isinstance(label_row, LabelRowEditor):
        label_row = label_row.payload()
    data = label_row.model_dump() if isinstance(label_row, LabelPayload) else label_row
    try:
        return LabelPayload.model_validate_json(to_json(data, fallback=_plain))
    except (ValidationError, PydanticSerializationError) as e:
        raise _HandlerError(
            f"the handler's label_row is not a label row ({e}); edit the injected LabelRowEditor, "
            "or return HandlerResult(label_row=LabelPayload(...))"
        ) from e


def _error_text(e: Exception) -> str:
    """A handler's exception as a result's error: its type, message and the end of its traceback."""
    try:
        message = f"{type(e).__name__}: {e}"
    except Exception:  # an exception whose own text fails
        message = f"{type(e).__name__} (its message could not be read)"
    return f"{message}\n{traceback.format_exc()[-_ERROR_CHARS:]}"


def _writable(text: str) -> str:
    """``text`` as valid UTF-8 (a file name's undecodable bytes, say, kept as escapes)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _priority(priority: Any) -> float | None:
    """A handler's priority, checked as ``LabelRowEditor.set_priority`` checks it."""
    if priority is None:
        return None
    # numbers.Real takes numpy's scalars too (a model's score), as pydantic's float does.
    if isinstance(priority, bool) or not isinstance(priority, numbers.Real | Decimal) or not math.isfinite(priority):
        raise _HandlerError(f"the handler's priority {priority!r} is not a number; return one from 0.0 to 1.0")
    value = float(priority)
    if not 0.0 <= value <= 1.0:
        raise _HandlerError(f"the handler's priority {value} is outside 0.0..1.0; return one in that range")
    return value


class _OutOfTime(Exception):
    """The batch's soft time limit interrupted a handler; carries that task's failed result."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__("out of time")
        self.result = result


class StageAgent:
    """A handler registered for one stage, wrapped to take task-spec JSON and answer result JSON.

    Call it with one spec JSON string (returns one result JSON string) or a
    list of them (returns a list). ``handler`` is the undecorated function.
    """

    def __init__(
        self,
        runner: SpecSource,
        stage_key: str,
        handler: Callable[..., Any],
        *,
        include_labels: bool | None,
        overwrite: bool,
        will_set_priority: bool,
    ) -> None:
        self.runner = runner
        self.stage_key = stage_key
        self.handler = handler
        self.dependant: Dependant = analyze(handler)
        self._include_labels = include_labels
        self.overwrite = overwrite
        self.will_set_priority = will_set_priority
        self.stage_uuid: str | None = None  # set when the runner is bound to a workflow
        self.stage_title: str | None = None
        functools.update_wrapper(self, handler)

    @property
    def include_labels(self) -> bool:
        """Whether specs carry the label row: as asked, else when the handler takes one."""
        if self._include_labels is not None:
            return self._include_labels
        return self.dependant.needs(LabelRowEditor)

    def __repr__(self) -> str:
        return f"StageAgent({self.stage_key!r}, {getattr(self.handler, '__qualname__', self.handler)!r})"

    # ------------------------------------------------------------- execution
    @overload
    def __call__(self, specs: str) -> str: ...
    @overload
    def __call__(self, specs: list[str]) -> list[str]: ...

    def __call__(self, specs: str | list[str]) -> str | list[str]:
        """Run the handler on spec JSON; answer result JSON (never raises for a handler failure).

        Raises:
            InvalidInputError: a message is not a task spec (a malformed message,
                to be dead-lettered by the caller, not retried).
        """
        parsed = parse_specs([specs] if isinstance(specs, str) else specs)
        results = self.run_specs_json(parsed)
        return results[0] if isinstance(specs, str) else results

    def run_specs(self, specs: list[TaskSpec]) -> list[TaskCompletionResult]:
        """Run the handler on each spec in turn; one result per spec, in order."""
        return [TaskCompletionResult(**fields) for fields in self._run_all(specs)]

    def run_specs_json(self, specs: list[TaskSpec]) -> list[str]:
        """:meth:`run_specs`, each result as ``TaskCompletionResult`` JSON (what a worker publishes).

        The results are written straight from their fields, in the model's field
        order: the text is what ``model_dump_json`` gives, for half the CPU (every
        field was checked when the spec was validated or the answer interpreted).
        """
        out = []
        for fields in self._run_all(specs):
            try:
                out.append(to_json(fields).decode())
            except PydanticSerializationError as e:  # not expected: every field was made writable
                error = _writable(f"the handler's answer could not be written as JSON ({e})")
                failed = {**fields, "success": False, "pathway": None, "labels": None, "priority": None}
                out.append(to_json({**failed, "error": error}).decode())
        return out

    def _run_all(self, specs: list[TaskSpec]) -> list[dict[str, Any]]:
        if not self.dependant.needs(dep_asset):
            return self._run_in_turn(specs, {})
        # Fetch the batch's files together, up front, instead of one by one per task.
        with fetch_assets(specs) as assets:
            return self._run_in_turn(specs, assets)

    def _run_in_turn(self, specs: list[TaskSpec], assets: Mapping[str, Path | str]) -> list[dict[str, Any]]:
        """Each spec's result, in order, until the batch's soft time limit; the rest fail unrun.

        Celery raises the soft time limit once per batch: the handler it
        interrupts fails, and the tasks after it are answered at once (and
        retried) instead of running on with no limit until the hard one kills
        the process and every result with it.
        """
        results = []
        for i, spec in enumerate(specs):
            try:
                results.append(self._run_one(spec, assets.get(str(spec.uuid)) if assets else None))
            except _OutOfTime as e:
                results.append(e.result)
                unrun = "not run: an earlier task of its batch used up the batch's soft time limit"
                results += [self._result(s, _now(), None, None, None, unrun) for s in specs[i + 1 :]]
                break
        return results

    def _run_one(self, spec: TaskSpec, asset: Path | str | None) -> dict[str, Any]:
        """One task's result, as the fields of its ``TaskCompletionResult``."""
        started = _now()
        ctx: TaskContext | None = None
        try:
            self._check_stage(spec)
            if self.dependant.provided or self.dependant.sub:
                ctx = TaskContext(spec, asset=asset if isinstance(asset, Path) else None)
                ctx.asset_error = asset if isinstance(asset, str) else None
                with ExitStack() as stack:
                    answer = self.handler(**solve(self.dependant, ctx, stack, {}))
            else:  # a handler that takes nothing needs no context
                answer = self.handler()
            pathway, labels, priority = self._interpret(spec, ctx, answer)
        except _HandlerError as e:
            return self._result(spec, started, None, None, None, str(e))
        except SoftTimeLimitExceeded:  # the whole batch's limit: _run_in_turn answers the rest
            error = (
                "SoftTimeLimitExceeded: the handler ran past the batch's soft time limit; make it faster, "
                "or raise ANNOFLOW_SOFT_TIME_LIMIT"
            )
            raise _OutOfTime(self._result(spec, started, None, None, None, error)) from None
        except Exception as e:  # the handler's own failure becomes a failed result
            return self._result(spec, started, None, None, None, _error_text(e))
        finally:
            if ctx is not None and ctx.asset is not None:
                ctx.asset.unlink(missing_ok=True)
        return self._result(spec, started, pathway, labels, priority, None)

    def _check_stage(self, spec: TaskSpec) -> None:
        if self.stage_uuid is not None and str(spec.stage_uuid) != self.stage_uuid:
            raise _HandlerError(
                f"task {spec.uuid} is from stage '{spec.stage_title}' but this handler serves "
                f"'{self.stage_title}'; route specs to runner.agent_for(spec.stage_uuid)"
            )

    def _interpret(
        self, spec: TaskSpec, ctx: TaskContext | None, answer: Any
    ) -> tuple[UUID | None, LabelPayload | None, float | None]:
        editor = ctx.edited if ctx is not None else None
        label_row: LabelRowEditor | LabelPayload | None = editor if editor is not None and editor.dirty else None
        priority = editor.priority if editor is not None else None
        if isinstance(answer, HandlerResult):
            label_row = answer.label_row if answer.label_row is not None else label_row
            priority = answer.priority if answer.priority is not None else priority
            answer = answer.pathway
        if answer is not None and not isinstance(answer, str | UUID):
            raise _HandlerError(
                f"handler {self.stage_key!r} returned {type(answer).__name__}; return a pathway name or UUID, "
                "None to stay, or HandlerResult(pathway=..., label_row=..., priority=...)"
            )
        pathway = resolve_pathway(spec, answer) if answer is not None else None
        return pathway, _payload(label_row), _priority(priority)

    @staticmethod
    def _result(
        spec: TaskSpec, started: datetime, pathway: UUID | None, labels: LabelPayload | None,
        priority: float | None, error: str | None,
    ) -> dict[str, Any]:  # fmt: skip
        # Every field of TaskCompletionResult, in its order (run_specs_json writes them as they are).
        return {
            "task_uuid": spec.uuid,
            "stage_uuid": spec.stage_uuid,
            "success": error is None,
            "pathway": pathway,
            "error": None if error is None else _writable(error),
            "lease_token": spec.lease_token,
            "labels": labels,
            "priority": priority,
            "run_id": spec.run_id,
            "attempt": spec.attempt,
            "started_at": started,
            "finished_at": _now(),
            "worker": _WORKER,
        }

    # ------------------------------------------------------- own producers
    def get_tasks(
        self, *, batch_size: int = 100, limit: int | None = None, lease_seconds: float = 600.0
    ) -> Iterator[str]:
        """Claim this stage's waiting tasks and yield their spec JSON, for a producer you write.

        Feed each to this agent (``agent(spec_json)``), and hand the results to
        :func:`common.store.apply.apply_results`. The runner must have a store
        (``runner.get_agent_stages(store)``).

        Raises:
            InvalidInputError: the runner has no store or is not bound to the workflow.
        """
        for batch in self.runner.claim_specs(self, batch_size=batch_size, limit=limit, lease_seconds=lease_seconds):
            for spec in batch:
                yield spec.model_dump_json()
