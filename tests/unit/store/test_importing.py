"""Bulk-import helpers: task uuids and the garbage-collector pause."""

from __future__ import annotations

import gc
import time
import uuid
from pathlib import Path

from common.store import Store
from common.store.importing import collector_per_batch, ordered_uuids


def test_ordered_uuids_are_ascending_unique_version_7() -> None:
    # Given two batches drawn one after the other
    first, second = ordered_uuids(1000), ordered_uuids(1000)
    # Then each batch ascends, every uuid is a valid RFC 9562 version-7 UUID, none repeats
    assert first == sorted(first) and second == sorted(second)
    parsed = [uuid.UUID(u) for u in first + second]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    assert len(set(first + second)) == 2000
    # And the first 48 bits are the current time in milliseconds (not random)
    assert abs(int(parsed[0].hex[:12], 16) - time.time() * 1000) < 5000


def test_collector_is_paused_during_the_import_and_restored_after() -> None:
    # Given the collector on
    assert gc.isenabled()
    # When an import runs
    with collector_per_batch() as batch_done:
        # Then it is off, and a batch end runs one young collection
        assert not gc.isenabled()
        before = gc.get_stats()[1]["collections"]
        batch_done()
        assert gc.get_stats()[1]["collections"] == before + 1
    # And it is on again afterwards
    assert gc.isenabled()


def test_a_new_sqlite_store_uses_8k_pages(tmp_path: Path) -> None:
    # Given a store on a new SQLite file
    store = Store.open(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        # Then its pages are 8 KiB (the size the bulk import was tuned for)
        with store.read() as conn:
            assert conn.exec_driver_sql("PRAGMA page_size").scalar() == 8192
    finally:
        store.close()
