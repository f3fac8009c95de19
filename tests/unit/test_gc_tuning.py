"""The collector tuning of the pipeline processes: startup heap frozen, young collections rarer, cycles freed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from common.gc_tuning import YOUNG_THRESHOLD, tune_gc


@pytest.fixture
def restore_gc() -> Iterator[None]:
    enabled, threshold = gc.isenabled(), gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    if enabled:
        gc.enable()
    else:
        gc.disable()


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_tune_gc_freezes_the_heap_and_raises_the_young_threshold(restore_gc: None) -> None:
    gc.unfreeze()
    middle, old = gc.get_threshold()[1:]
    tune_gc()
    assert gc.get_freeze_count() > 1000  # the modules loaded so far, at least
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, old)
    tune_gc()  # a second call (producer and applier in one process) changes nothing more
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, old)


def test_cycles_made_after_tuning_are_still_collected(restore_gc: None) -> None:
    tune_gc()
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    ref = weakref.ref(a)
    del a, b
    assert ref() is not None  # a cycle: refcounting alone cannot free it
    gc.collect()
    assert ref() is None


def test_a_disabled_collector_is_left_alone(restore_gc: None) -> None:
    gc.unfreeze()
    gc.disable()
    before = gc.get_threshold()
    tune_gc()
    assert not gc.isenabled()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
