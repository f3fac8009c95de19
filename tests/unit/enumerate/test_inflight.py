"""The in-flight ledger in files (the embedded broker's) and in the store (other brokers): counting, expiry."""

from __future__ import annotations

import time
from pathlib import Path

from common.store import Store
from producer.enumerate.inflight import FileLedger, Ledger, RedisLedger, StoreLedger, make_ledger


def _counts_live_batches_and_forgets_expired_ones(ledger: Ledger) -> None:
    # Given three batches in flight, one of them past its deadline
    ledger.add_many("p", "s", ["b1", "b2"], time.time() + 60)
    ledger.add("p", "s", "old", time.time() - 1)

    # When one is applied and the stage is counted
    ledger.remove_many([("p", "s", "b1")])

    # Then only the live, unapplied one counts; other stages count nothing
    assert ledger.count("p", "s") == 1
    assert ledger.count("p", "other-stage") == 0
    assert ledger.count("other-project", "s") == 0


def test_file_ledger_counts_live_batches_and_forgets_expired_ones(tmp_path: Path) -> None:
    _counts_live_batches_and_forgets_expired_ones(FileLedger(tmp_path / "inflight"))
    # and the expired batch's file is gone
    assert sorted(p.name for p in (tmp_path / "inflight" / "p" / "s").iterdir()) == ["b2"]


def test_store_ledger_counts_live_batches_and_forgets_expired_ones(store: Store) -> None:
    ledger = StoreLedger(store)
    _counts_live_batches_and_forgets_expired_ones(ledger)
    # When the producer adds the stage's next batches, the expired row goes
    ledger.add_many("p", "s", ["b3"], time.time() + 60)
    assert ledger.count("p", "s") == 2
    ledger.remove("p", "s", "b2")
    ledger.remove_many([("p", "s", "b3"), ("p", "s", "never-added")])
    assert ledger.count("p", "s") == 0


def test_each_broker_gets_a_ledger_that_producer_and_applier_share(tmp_path: Path, store: Store) -> None:
    # When the ledger is made for Redis, the embedded broker and RabbitMQ
    redis_ledger = make_ledger("redis://127.0.0.1:6379/9", tmp_path, store)
    embedded = make_ledger("filesystem://localhost/", tmp_path, store)
    amqp = make_ledger("amqp://guest:guest@rabbit:5672//", tmp_path, store)

    # Then Redis holds its own, the embedded broker's is in files beside it, and RabbitMQ's is in the store
    assert isinstance(redis_ledger, RedisLedger)
    assert isinstance(embedded, FileLedger) and embedded.folder == tmp_path / "inflight"
    assert isinstance(amqp, StoreLedger) and amqp.store is store
