"""A store that cannot be reached: TransientError, and the result applier puts the message back."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from common.batches import ResultBatch
from common.errors import TransientError
from common.models import TaskCompletionResult
from common.store import Store
from common.store.apply import apply_results
from common.store.engine import make_engine
from producer.apply.applier import ResultApplier
from tests.helpers import batch_header

# Nothing listens on port 1: connecting is refused at once.
UNREACHABLE = "postgresql://annoflow@127.0.0.1:1/annoflow"


class FakeMessage:
    """What the applier uses of a kombu message."""

    def __init__(self, body: str) -> None:
        self.body = body
        self.calls: list[str] = []

    def ack(self) -> None:
        self.calls.append("ack")

    def requeue(self) -> None:
        self.calls.append("requeue")

    def reject(self) -> None:
        self.calls.append("reject")


class FakeLedger:
    def __init__(self) -> None:
        self.removed: list[str] = []

    def remove(self, project_id: str, stage_uuid: str, batch_id: str) -> None:
        self.removed.append(batch_id)


def _result() -> TaskCompletionResult:
    return TaskCompletionResult(task_uuid=uuid.uuid4(), success=True, lease_token="L1:1")


def test_an_unreachable_store_raises_transient_error_with_where_it_is() -> None:
    # Given a PostgreSQL store nobody answers at
    store = Store(make_engine(UNREACHABLE))

    # When results are applied, Then the error says the store is unavailable (password-free URL)
    with pytest.raises(TransientError, match=r"the store at .*127\.0\.0\.1:1.* is unavailable"):
        apply_results(store, [_result()], num_retries=0)
    store.close()


def test_a_driver_level_sqlite_error_is_transient(tmp_path: Path) -> None:
    # Given a SQLite store (the applier sends some statements straight to the driver)
    store = Store.open(f"sqlite:///{tmp_path / 'a.db'}")

    # When the driver reports the file busy inside a write, Then it comes out as TransientError
    with pytest.raises(TransientError, match="database is locked"), store.write():
        raise sqlite3.OperationalError("database is locked")
    store.close()


def test_the_applier_puts_a_message_back_while_the_store_is_down() -> None:
    # Given an applier on an unreachable store, asked to stop (so it does not wait out its retries)
    store = Store(make_engine(UNREACHABLE))
    ledger = FakeLedger()
    applier = ResultApplier(store, "redis://127.0.0.1:6379/0", {}, ledger, num_retries=0)  # type: ignore[arg-type]
    applier.stop.set()
    header = batch_header("b1")
    message = FakeMessage(ResultBatch(header=header, results=[_result()]).model_dump_json())

    # When the message arrives
    applier._on_message(message)  # type: ignore[arg-type]

    # Then it goes back to the queue untouched: not acknowledged, not dead-lettered, still in flight
    assert message.calls == ["requeue"]
    stats: dict[str, Any] = applier.stats.as_dict()
    assert stats["requeued"] == 1 and stats["dead_letters"] == 0 and stats["applied"] == 0
    assert ledger.removed == []
    store.close()
