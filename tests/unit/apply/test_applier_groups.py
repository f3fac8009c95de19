"""The applier on Redis applies a group of messages in one transaction; a group that fails is applied one by one."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from common.batches import ResultBatch
from common.errors import TransientError
from common.models import TaskCompletionResult
from common.store.apply import ApplyOutcome
from producer.apply import applier as apply_module
from producer.apply.applier import ResultApplier
from producer.apply.stats import MemoryApplyStats
from producer.enumerate.inflight import RedisLedger
from tests.helpers import batch_header

POISON = uuid.uuid4()  # a task whose result breaks any transaction it is in


class FakeReader:
    def __init__(self) -> None:
        self.requeued: list[bytes] = []
        self.finished = 0

    def finish(self, requeue: list[bytes] = [], also: Callable[[Any], object] | None = None) -> None:  # noqa: B006
        self.requeued += requeue
        self.finished += 1


class FakeLedger:
    def __init__(self) -> None:
        self.removed: list[str] = []

    def remove_many(self, batches: list[tuple[str, str, str]]) -> None:
        self.removed += [b for _, _, b in batches]


class FakeDeadLetters:
    def __init__(self) -> None:
        self.kept: list[dict[str, Any]] = []

    def publish(self, body: dict[str, Any], **_: Any) -> None:
        self.kept.append(body)


def _envelope(batch_id: str, task: uuid.UUID) -> bytes:
    header = batch_header(batch_id)
    result = TaskCompletionResult(task_uuid=task, success=True, lease_token="L1:1")
    body = ResultBatch(header=header, results=[result]).model_dump_json().encode()
    return json.dumps({"body": base64.b64encode(body).decode(), "properties": {"body_encoding": "base64"}}).encode()


@pytest.fixture
def transactions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Stand in for the store: record the results per transaction; the poison task breaks one."""
    sizes: list[int] = []

    def fake_apply(_store: Any, results: list[TaskCompletionResult], **_: Any) -> ApplyOutcome:
        if any(r.task_uuid == POISON for r in results):
            raise RuntimeError("a bug the poison result triggers")
        sizes.append(len(results))
        return ApplyOutcome(applied=len(results))

    monkeypatch.setattr(apply_module, "apply_results", fake_apply)
    return sizes


def _applier() -> tuple[ResultApplier, FakeLedger, FakeDeadLetters]:
    ledger, dead = FakeLedger(), FakeDeadLetters()
    applier = ResultApplier(None, "redis://127.0.0.1:6379/0", {}, ledger)  # type: ignore[arg-type]
    applier._dead_producer = dead  # type: ignore[assignment]
    return applier, ledger, dead


def test_a_group_is_one_transaction_and_acknowledged_together(transactions: list[int]) -> None:
    # Given three valid messages and one that is not a results message at all
    applier, ledger, dead = _applier()
    applier.observer = metrics = MemoryApplyStats()
    reader = FakeReader()
    raws = [_envelope(f"b{i}", uuid.uuid4()) for i in range(3)] + [b"junk"]

    # When the applier takes them as one group
    held = applier._apply_group(reader, raws)  # type: ignore[arg-type]

    # Then the three (one result each) go in one transaction, the junk is dead-lettered, one finish acks all
    assert transactions == [3] and held == 3
    assert ledger.removed == ["b0", "b1", "b2"]
    assert [k["reason"][:25] for k in dead.kept] == ["not a kombu message envel"]
    assert reader.finished == 1 and reader.requeued == []
    assert (applier.stats.messages, applier.stats.applied, applier.stats.dead_letters) == (4, 3, 1)
    # And /metrics counts four messages read (one a dead letter), three observed with their transaction's time
    totals = metrics.read()
    assert (totals.counts["messages"], totals.counts["dead_letters"], totals.seconds_count) == (4, 1, 3)


def test_a_group_that_fails_is_applied_one_message_at_a_time(transactions: list[int]) -> None:
    # Given a group whose middle message breaks any transaction it is part of
    applier, ledger, dead = _applier()
    reader = FakeReader()
    raws = [_envelope("b0", uuid.uuid4()), _envelope("poison", POISON), _envelope("b2", uuid.uuid4())]

    # When the applier takes them as one group
    applier._apply_group(reader, raws)  # type: ignore[arg-type]

    # Then the group's transaction failed, the two good messages were applied alone, and only the poison is dead
    assert transactions == [1, 1]
    assert ledger.removed == ["b0", "b2"]
    assert len(dead.kept) == 1 and "a bug the poison result triggers" in dead.kept[0]["reason"]
    assert reader.requeued == []


def test_a_group_goes_back_whole_while_the_store_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a store that cannot be reached, and an applier asked to stop (no waiting out retries)
    def down(*_: Any, **__: Any) -> ApplyOutcome:
        raise TransientError("the store is unavailable")

    monkeypatch.setattr(apply_module, "apply_results", down)
    applier, ledger, dead = _applier()
    applier.stop.set()
    reader = FakeReader()
    raws = [_envelope(f"b{i}", uuid.uuid4()) for i in range(2)]

    # When the applier takes them as one group
    applier._apply_group(reader, raws)  # type: ignore[arg-type]

    # Then both go back to the queue, stay in flight, and nothing is dead-lettered
    assert reader.requeued == raws
    assert ledger.removed == [] and dead.kept == []
    assert applier.stats.requeued == 2


class CountingLedger(RedisLedger):
    """The Redis ledger's type (the applier lingers only with it), counting from a dict."""

    def __init__(self, in_flight: dict[tuple[str, str], int]) -> None:
        self.in_flight = in_flight

    def count(self, project_id: str, stage_uuid: str) -> int:
        return self.in_flight.get((project_id, stage_uuid), 0)


@pytest.mark.parametrize(("in_flight", "waits"), [(15, []), (16, [0.03]), (150, [0.03])])
def test_the_applier_lingers_only_with_many_batches_in_flight(in_flight: int, waits: list[float]) -> None:
    # Given an applier that just applied a small group of one stage's batches, `in_flight` of them left
    applier = ResultApplier(None, "redis://127.0.0.1:6379/0", {}, CountingLedger({("p", "s"): in_flight}))  # type: ignore[arg-type]
    applier._group_stages = {("p", "s")}
    slept: list[float] = []
    applier.stop.wait = lambda timeout=None: bool(slept.append(float(timeout or 0)))  # type: ignore[method-assign]

    # When it decides whether to wait for more messages before the next take
    applier._linger()

    # Then it waits only when enough are in flight: with few, the producer is waiting for room
    assert slept == waits


class FakeMessage:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.acked = False

    def ack(self) -> None:
        self.acked = True


class UnreachableLedger(FakeLedger):
    def remove(self, project_id: str, stage_uuid: str, batch_id: str) -> None:
        raise TransientError("the store at postgresql://db/annoflow is unavailable")


def test_a_ledger_out_of_reach_after_the_commit_does_not_stop_the_applier(transactions: list[int]) -> None:
    # Given an applier on a kombu broker whose in-flight ledger (in the store) cannot be reached
    applier = ResultApplier(None, "amqp://guest:guest@127.0.0.1:5672//", {}, UnreachableLedger())  # type: ignore[arg-type]
    applied: list[str] = []
    applier.on_applied = lambda batch: applied.append(batch.header.batch_id)
    body = ResultBatch(
        header=batch_header("b1"), results=[TaskCompletionResult(task_uuid=uuid.uuid4(), success=True)]
    ).model_dump_json()
    message = FakeMessage(body.encode())

    # When a results message is delivered and applied
    applier._on_message(message)  # type: ignore[arg-type]

    # Then it was committed and acknowledged, and the applier goes on (the entry expires at its deadline)
    assert transactions == [1] and message.acked and applied == ["b1"]
