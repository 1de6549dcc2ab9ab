"""The billing rules as properties over a controllable clock: any start, any end, any
resize moment, any promotion window and credit, any tax rate."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpucloud.domain.billing import (
    HOUR,
    ZERO,
    Credit,
    Period,
    Price,
    Segment,
    accrue,
    apply_credits,
    bill,
    cents,
    charges,
    money,
    started_hours,
)

GPU = Price.of("RTX6000 GPU x1", "1.5", "500", gpu=True)
SMALL = Price.of("Nanode 1GB", "0.0075", "5")
BIG = Price.of("Dedicated 8GB", "0.108", "72")
PRICES = {"gpu": GPU, "small": SMALL, "big": BIG}
NOV = Period(2026, 11)

moments = st.datetimes(min_value=datetime(2026, 9, 1), max_value=datetime(2027, 2, 28))
seconds = st.integers(min_value=0, max_value=62 * 24 * 3600)
plans = st.sampled_from(sorted(PRICES))
rates = st.sampled_from([Decimal(0), Decimal("0.05"), Decimal("0.0825"), Decimal("0.2")])
many = settings(max_examples=150, deadline=None)


def seg(start: datetime, end: datetime | None, plan: str = "small", instance_id: int = 1) -> Segment:
    return Segment(instance_id, f"vm-{instance_id}", "us-east", plan, start, end)


def test_partial_hours_are_started_hours():
    t = datetime(2026, 11, 3, 10, 0)
    assert started_hours(t, t) == 0
    assert started_hours(t, t + timedelta(seconds=1)) == 1
    assert started_hours(t, t + HOUR) == 1
    assert started_hours(t, t + HOUR + timedelta(microseconds=1)) == 2
    (c,) = charges([seg(t, t + timedelta(minutes=90), "gpu")], PRICES, NOV)
    assert (c.hours, c.amount) == (2, Decimal("3.00"))


def test_a_whole_month_costs_the_monthly_price_exactly():
    (c,) = charges([seg(datetime(2026, 10, 20), None, "big")], PRICES, NOV)
    assert c.hours == 30 * 24 and c.capped and c.amount == Decimal("72.00")


def test_sub_cent_rates_round_once_per_line():
    t = datetime(2026, 11, 1)
    (c,) = charges([seg(t, t + 3 * HOUR, "small")], PRICES, NOV)
    assert c.amount == Decimal("0.02")  # 3 x 0.0075 = 0.0225
    assert c.unit_price == Decimal("0.0075")


@many
@given(start=moments, length=seconds, plan=plans)
def test_one_segment_in_one_month(start, length, plan):
    period = Period.of(start)
    end = min(start + timedelta(seconds=length), period.end)
    found = charges([seg(start, end, plan)], PRICES, period)
    hours = math.ceil((end - start) / HOUR)
    if hours == 0:
        assert found == []
        return
    (c,) = found
    assert c.hours == hours
    assert c.amount == cents(min(hours * PRICES[plan].hourly, PRICES[plan].monthly))
    assert ZERO < c.amount <= PRICES[plan].monthly


@many
@given(start=moments, length=seconds, plan=plans)
def test_month_boundaries_split_usage_and_each_month_is_capped(start, length, plan):
    end = start + timedelta(seconds=length)
    months, period = [], Period.of(start)
    while period.start < end:
        months.append(period)
        period = period.next()
    if not months:
        return
    per_month = [charges([seg(start, end, plan)], PRICES, p) for p in months]
    total_hours = sum(c.hours for found in per_month for c in found)
    # every month counts the hours started in it: at most one more per boundary crossed
    assert math.ceil(length / 3600) <= total_hours <= math.ceil(length / 3600) + len(months) - 1
    for found in per_month:
        assert all(c.amount <= PRICES[plan].monthly for c in found)
        assert all(c.start >= c.pieces[0][0] and c.end <= months[-1].end for c in found)


@many
@given(start=st.datetimes(min_value=datetime(2026, 11, 1), max_value=datetime(2026, 11, 29)),
       before=st.integers(0, 20 * 24 * 3600), after=st.integers(0, 20 * 24 * 3600),
       old=plans, new=plans)
def test_a_resize_splits_usage_at_the_moment_it_takes_effect(start, before, after, old, new):
    if old == new:
        new = "gpu" if old != "gpu" else "small"
    moment = min(start + timedelta(seconds=before), NOV.end)
    end = min(moment + timedelta(seconds=after), NOV.end)
    found = {c.type_id: c for c in charges([seg(start, moment, old), seg(moment, end, new)], PRICES, NOV)}
    for plan, a, b in ((old, start, moment), (new, moment, end)):
        hours = started_hours(a, b)
        if hours == 0:
            assert plan not in found
        else:
            assert found[plan].hours == hours
            assert found[plan].amount == cents(min(hours * PRICES[plan].hourly, PRICES[plan].monthly))


def test_resize_mid_month_each_plan_capped_separately():
    usage = [seg(datetime(2026, 10, 1), datetime(2026, 11, 15, 10, 30), "big"),
             seg(datetime(2026, 11, 15, 10, 30), None, "gpu")]
    found = {c.type_id: c for c in charges(usage, PRICES, NOV)}
    assert found["big"].hours == 14 * 24 + 11 and found["big"].amount == Decimal("37.48")  # 347 x 0.108 = 37.476
    assert found["gpu"].hours == 374 and found["gpu"].capped and found["gpu"].amount == Decimal("500.00")


@many
@given(credit=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("2000"), places=2),
       length=st.integers(1, 30 * 24 * 3600), rate=rates, plan=plans,
       window=st.tuples(st.integers(0, 30 * 24 * 3600), st.integers(0, 30 * 24 * 3600)))
def test_credit_pays_covered_usage_first_and_never_more(credit, length, rate, plan, window):
    start = datetime(2026, 11, 1)
    usage = [seg(start, start + timedelta(seconds=length), plan, 1),
             seg(start, start + timedelta(seconds=length), "small", 2)]
    lo, hi = sorted(window)
    promo = Credit(7, "GPU trial", credit, frozenset({"gpu"}), start + timedelta(seconds=lo),
                   start + timedelta(seconds=hi))
    found, applied, result = accrue(usage, PRICES, NOV, [promo], rate)
    spent = sum((a.amount for a in applied), ZERO)
    gpu_charges = sum((c.amount for c in found if PRICES[c.type_id].gpu), ZERO)
    assert ZERO <= spent <= min(credit, gpu_charges)
    if plan != "gpu":
        assert spent == ZERO  # covers GPU plans only
    assert result.subtotal == sum((c.amount for c in found), ZERO) - spent >= ZERO
    # the items always sum to the invoice's totals
    assert sum((line.amount for line in result.lines), ZERO) == result.subtotal
    assert sum((line.tax for line in result.lines), ZERO) == result.tax
    assert sum((line.total for line in result.lines), ZERO) == result.total == result.subtotal + result.tax


def test_a_promotion_running_out_mid_invoice():
    start = datetime(2026, 11, 2)
    usage = [seg(start, start + 10 * HOUR, "gpu", 1), seg(start + 5 * HOUR, start + 20 * HOUR, "gpu", 2)]
    promo = Credit(1, "$20 off", Decimal("20.00"), frozenset({"all"}), datetime(2026, 11, 1), datetime(2026, 12, 1))
    found, applied, result = accrue(usage, PRICES, NOV, [promo])
    assert [c.amount for c in found] == [Decimal("15.00"), Decimal("22.50")]
    assert applied[0].amount == Decimal("20.00")
    assert result.total == Decimal("17.50")
    assert [line.type for line in result.lines] == ["hourly", "hourly", "promotion"]
    assert result.lines[-1].amount == Decimal("-20.00")


def test_trial_ending_mid_hour_covers_the_hour_it_started():
    start = datetime(2026, 11, 2, 10)
    usage = [seg(start, start + 6 * HOUR, "gpu")]
    trial = Credit(1, "GPU trial", Decimal("10000"), frozenset({"gpu"}), datetime(2026, 11, 1),
                   datetime(2026, 11, 2, 13, 30))
    found, applied, result = accrue(usage, PRICES, NOV, [trial])
    assert found[0].amount == Decimal("9.00")
    assert applied[0].amount == Decimal("6.00")  # hours 10, 11, 12 and 13 (begun before 13:30)
    assert result.total == Decimal("3.00")


def test_promotions_expiring_first_are_spent_first_and_a_dollar_is_paid_once():
    start = datetime(2026, 11, 2)
    usage = [seg(start, start + 4 * HOUR, "gpu")]  # 6.00
    late = Credit(1, "late", Decimal("5"), frozenset({"all"}), datetime(2026, 11, 1), datetime(2027, 1, 1))
    soon = Credit(2, "soon", Decimal("4"), frozenset({"gpu"}), datetime(2026, 11, 1), datetime(2026, 12, 1))
    applied = apply_credits(charges(usage, PRICES, NOV), PRICES, [late, soon])
    assert [(a.promotion_id, a.amount) for a in applied] == [(2, Decimal("4")), (1, Decimal("2.00"))]


def test_tax_per_line():
    start = datetime(2026, 11, 2)
    found = charges([seg(start, start + 3 * HOUR, "gpu")], PRICES, NOV)
    result = bill(found, PRICES, [], Decimal("0.0825"))
    assert (result.subtotal, result.tax, result.total) == (Decimal("4.50"), Decimal("0.37"), Decimal("4.87"))


def test_the_running_month_is_charged_up_to_now():
    now = datetime(2026, 11, 10, 12, 15)
    (c,) = charges([seg(datetime(2026, 11, 10, 9, 0), None, "gpu")], PRICES, NOV, until=now)
    assert c.hours == 4 and c.end == now


def test_periods():
    assert str(Period.parse("2026-11")) == "2026-11"
    assert Period(2026, 12).next() == Period(2027, 1) and Period(2027, 1).previous() == Period(2026, 12)
    assert Period(2026, 12).end == datetime(2027, 1, 1)
    for bad in ("2026-13", "2026-1", "26-11", "2026-00", "x"):
        with pytest.raises(ValueError):
            Period.parse(bad)


def test_money():
    assert money("25") == Decimal("25.00") and money("$12.50") == Decimal("12.50")
    for bad in ("0", "-3", "1.005", "NaN", "inf", "abc", "1e12"):
        with pytest.raises(ValueError):
            money(bad)
