"""Usage from counters: rates between readings, traffic across a guest restart, the ring's slot,
and Linode's transfer figures."""

from __future__ import annotations

from datetime import datetime, timedelta

from gpucloud.domain.guest_stats import GIB, Reading, ring_slot, series, traffic, transfer

T0 = datetime(2026, 11, 30, 12, 0, 0)


def reading(minutes: float, cpu: float, ops: int, rx: int, tx: int) -> Reading:
    return Reading(T0 + timedelta(minutes=minutes), 4, cpu, ops, ops * 4096, rx, tx)


def test_rates_are_differences_over_time_and_a_restart_is_skipped():
    readings = [reading(0, 100, 1000, 10_000, 5_000), reading(5, 400, 4000, 310_000, 80_000),
                reading(10, 30, 100, 1000, 1000),  # the guest restarted: counters began again
                reading(15, 330, 3100, 301_000, 76_000)]
    data = series(list(reversed(readings)))  # order of the rows does not matter
    assert data["cpu"][0] == [int(datetime(2026, 11, 30, 12, 5).timestamp() * 1000) + _utc_shift(), 100.0]
    assert [p[1] for p in data["cpu"]] == [100.0, 100.0]  # 300 CPU-seconds in 300 s: one vCPU busy
    assert [p[1] for p in data["io"]["io"]] == [10.0, 10.0]
    assert [p[1] for p in data["netv4"]["in"]] == [8000.0, 8000.0] and data["netv4"]["out"][0][1] == 2000.0
    assert all(p[1] == 0 for p in data["netv6"]["in"] + data["io"]["swap"] + data["netv4"]["private_out"])
    assert len(data["netv6"]["out"]) == 2


def _utc_shift() -> int:
    """Naive readings are UTC; `datetime.timestamp()` above read it as local time."""
    return int(datetime(2026, 11, 30, 12, 5).astimezone().utcoffset().total_seconds() * 1000)


def test_traffic_counts_everything_after_a_restart():
    a, b = reading(0, 1, 1, 1000, 500), reading(5, 2, 2, 1600, 900)
    assert traffic(None, a) == (1000, 500) and traffic(a, b) == (600, 400)
    assert traffic(b, reading(10, 0, 0, 50, 20)) == (50, 20)


def test_the_ring_holds_a_day_of_five_minute_readings():
    slots = {ring_slot(T0 + timedelta(minutes=5 * n), 300, 288) for n in range(288)}
    assert slots == set(range(288))
    assert ring_slot(T0 + timedelta(days=1), 300, 288) == ring_slot(T0, 300, 288)


def test_transfer_is_outbound_bytes_against_the_quota():
    assert transfer(0, 1000) == {"used": 0, "quota": 1000, "billable": 0}
    assert transfer(1000 * GIB, 1000)["billable"] == 0
    assert transfer(1000 * GIB + 1, 1000)["billable"] == 1
