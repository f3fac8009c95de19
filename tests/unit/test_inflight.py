"""The in-flight ledger in files (the embedded broker's, and any broker but Redis): counting, expiry, the warning."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from producer.inflight import FileLedger, make_ledger


def test_file_ledger_counts_live_batches_and_forgets_expired_ones(tmp_path: Path) -> None:
    # Given three batches in flight, one of them past its deadline
    ledger = FileLedger(tmp_path / "inflight")
    ledger.add_many("p", "s", ["b1", "b2"], time.time() + 60)
    ledger.add("p", "s", "old", time.time() - 1)

    # When one is applied and the stage is counted
    ledger.remove_many([("p", "s", "b1")])

    # Then only the live, unapplied one counts, and the expired one is gone
    assert ledger.count("p", "s") == 1
    assert sorted(p.name for p in (tmp_path / "inflight" / "p" / "s").iterdir()) == ["b2"]
    assert ledger.count("p", "other-stage") == 0


def test_a_broker_other_than_redis_says_the_ledger_needs_one_host(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # When the ledger is made for the embedded broker, then for RabbitMQ
    with caplog.at_level(logging.WARNING, logger="annoflow.producer"):
        embedded = make_ledger("filesystem://localhost/", tmp_path)
        quiet = list(caplog.records)
        amqp = make_ledger("amqp://guest:s3cret@rabbit:5672//", tmp_path)

    # Then both keep it in files, and only RabbitMQ's warns, naming the folder and not the password
    assert isinstance(embedded, FileLedger) and isinstance(amqp, FileLedger) and quiet == []
    (record,) = caplog.records
    assert "one host" in record.getMessage() and str(tmp_path / "inflight") in record.getMessage()
    assert "s3cret" not in record.getMessage()
