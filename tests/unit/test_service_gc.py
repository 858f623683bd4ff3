"""Services freeze their start-up objects out of the garbage collector and collect the young
generation less often (``infra.service.tune_gc``; why: bench/RESULTS.md, issue 13)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from infra.service import tune_gc
from infra.settings import CommonSettings


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_tune_gc_freezes_what_exists_and_raises_the_young_threshold(restored_gc: None) -> None:
    kept = [object() for _ in range(10)]
    tune_gc(50_000)
    assert gc.get_threshold() == (50_000, 20, 10)
    assert gc.get_freeze_count() > len(kept)
    # Garbage in cycles is still collected.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1


def test_zero_keeps_pythons_thresholds(restored_gc: None) -> None:
    before = gc.get_threshold()
    tune_gc(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() > 0


def test_the_default_is_the_measured_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELGATE_GC_GEN0_THRESHOLD", raising=False)
    assert CommonSettings().gc_gen0_threshold == 50_000
    monkeypatch.setenv("MODELGATE_GC_GEN0_THRESHOLD", "0")
    assert CommonSettings().gc_gen0_threshold == 0
