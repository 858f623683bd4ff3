"""Load shedding decisions (ingress.admission), on a clock the test moves."""

from __future__ import annotations

import pytest

from ingress.admission import Admission
from ingress.errors import IngressError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def refused(admission: Admission, rows: int = 1) -> IngressError | None:
    try:
        admission.admit(rows)
    except IngressError as exc:
        return exc
    return None


def test_rows_beyond_the_cap_are_refused_with_overloaded_and_retry_after() -> None:
    admission = Admission(0.0, max_rows=10, floor_rows=1)
    for _ in range(10):
        assert refused(admission) is None
    error = refused(admission)
    assert error is not None
    assert (error.status, error.code.value) == (503, "OVERLOADED")
    assert error.headers == {"Retry-After": "1"}
    assert error.details == {"reason": "inflight_rows", "retry_after_s": 1}
    assert admission.rows_pending == 10 and admission.shed["inflight_rows"] == 1
    admission.released(3)  # failed or expired: room again, no throughput measured
    assert refused(admission, 3) is None and admission.rate == 0.0


def test_delay_over_the_target_for_longer_than_a_burst_sheds_until_the_queue_drains() -> None:
    clock = Clock()
    admission = Admission(0.1, max_rows=0, floor_rows=8, shed_after_s=0.25, clock=clock)
    for _ in range(25):
        admission.admit(10)
    # Answers of 10 rows every 1/64 s (the first one only starts the measure): 640 rows/s.
    for _ in range(8):
        clock.now += 1 / 64
        admission.completed(10, 0.01)
    assert admission.rate == pytest.approx(640.0)
    # 170 rows wait: 0.27 s, less the 0.01 s batch in service, is over the 0.1 s target...
    assert admission.rows_pending == 170
    assert admission.expected_delay_s == pytest.approx(170 / 640 - 0.01)
    assert refused(admission) is None  # ...but a burst is let through for 0.25 s
    # up to the target plus those 0.25 s of waiting (230.4 rows), never more
    assert refused(admission, 60) is None
    error = refused(admission)
    assert error is not None and not admission.shedding
    admission.completed(60, 0.01)
    clock.now += 0.25
    error = refused(admission)
    assert error is not None and error.details["reason"] == "queue_delay"
    assert admission.shedding and admission.shed["queue_delay"] == 2
    admission.completed(100, 0.01)  # 71 rows: still over the target, still shedding
    assert refused(admission) is not None
    admission.completed(40, 0.01)  # 31 rows: under half the target's worth (35.2)
    assert refused(admission) is None and not admission.shedding
    assert refused(admission, 60) is None
    assert refused(admission) is None  # over the target again: a new burst is let through


def test_little_waiting_is_admitted_whatever_was_measured_and_idle_time_is_not_slowness() -> None:
    clock = Clock()
    admission = Admission(0.05, max_rows=0, floor_rows=64, clock=clock)
    admission.admit(20)
    clock.now += 5.0  # a slow first answer (a model loading) is not measured...
    admission.completed(10, 0.5)
    assert admission.rate == 0.0
    clock.now += 1.0  # ...the time to the next one is: 10 rows/s
    admission.completed(10, 0.5)
    assert admission.rate == pytest.approx(10.0)
    # Under a batch's worth waiting, even this slow rate refuses nothing.
    for _ in range(63):
        assert refused(admission) is None
    admission.completed(63, 0.001)
    clock.now += 3600.0  # an idle hour does not count as time spent serving
    admission.admit(1)
    clock.now += 0.2
    admission.completed(1, 0.001)
    assert admission.rate == pytest.approx(10.0)


def test_no_limit_when_both_settings_are_zero() -> None:
    clock = Clock()
    admission = Admission(0.0, max_rows=0, floor_rows=1, clock=clock)
    admission.admit(1)
    clock.now += 1.0
    admission.completed(1, 0.0)
    for _ in range(10_000):
        admission.admit(1)
    assert admission.rows_pending == 10_000
