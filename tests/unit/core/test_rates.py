"""Work units, throughput, ETA and the series of the history plots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from metaprod.core.progress import TransformationProgress
from metaprod.core.rates import Point, combine, eta_seconds, format_eta, per_minute, rates, window_start, work_units

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(minutes: float, done: int, failed: int = 0, pending: int = 0) -> Point:
    return Point(T0 + timedelta(minutes=minutes), done, failed, pending)


def test_units_follow_the_percent_a_root_counts_tasks_a_child_files() -> None:
    root = TransformationProgress("gen", "Active", {}, {"Done": 3, "Failed": 1, "Killed": 1}, task_count=10)
    assert (work_units(root).done, work_units(root).failed, work_units(root).pending) == (3, 2, 5)
    child = TransformationProgress("reco", "Active", {"Processed": 4, "Problematic": 1, "Unused": 2, "Assigned": 1}, {})
    assert (work_units(child).done, work_units(child).failed, work_units(child).pending) == (4, 1, 3)
    completed = TransformationProgress("m", "Completed", {"Processed": 2, "Unused": 1}, {})
    assert work_units(completed).pending == 0


def test_throughput_and_eta() -> None:
    assert per_minute(at(0, 10), at(5, 60)) == 10.0
    assert per_minute(None, at(5, 60)) == 0.0
    assert eta_seconds(100, 10.0) == 600.0
    assert eta_seconds(100, 0.0) is None and eta_seconds(0, 0.0) == 0.0
    assert format_eta(None) == "-" and format_eta(0) == "done" and format_eta(600) == "10 min"
    assert format_eta(3 * 3600 + 120) == "3 h 02 min"


def test_window_start_is_the_state_at_the_start_of_the_window() -> None:
    points = [at(0, 0), at(30, 10), at(55, 20)]
    now = T0 + timedelta(minutes=60)
    assert window_start(points, now, timedelta(minutes=10)) == at(30, 10)  # the state 10 min ago
    assert window_start(points, now, timedelta(minutes=40)) == at(30, 10)
    assert window_start([], now, timedelta(minutes=10)) is None


def test_series_are_carried_forward_and_summed() -> None:
    a = [at(0, 1), at(2, 3)]
    b = [at(1, 10)]
    total = combine([a, b])
    assert [(p.time - T0, p.done) for p in total] == [
        (timedelta(0), 1),
        (timedelta(minutes=1), 11),
        (timedelta(minutes=2), 13),
    ]


def test_rates_per_minute_and_thinning() -> None:
    r = rates([at(0, 0, 0, 10), at(1, 5, 1, 5), at(3, 9, 1, 0)])
    assert r.throughput == [5.0, 2.0] and r.failures == [1.0, 0.0] and r.backlog == [5.0, 0.0]
    many = [at(i, i) for i in range(1000)]
    assert len(rates(many, max_points=100).times) == 99
