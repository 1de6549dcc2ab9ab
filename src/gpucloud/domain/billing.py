"""Billing rules, pure: what recorded usage costs, what promotion credit takes off, and the
invoice lines that result. Exact Decimal dollars (USD), rounded to cents once per line.

- An instance accrues from creation until deletion, running or not (Linode's rule). Its
  usage is a list of `Segment`s: one plan from a start to an end (None: still running).
- Price: the plan's hourly rate per *started* hour, capped at the plan's monthly price
  within a calendar month (UTC). Hours are counted per segment, clipped to the month, so
  a resize at 10:30 starts the new plan's hour 10 as well (each plan pays for the hours it
  started), and an instance alive across midnight of the 1st starts a new hour at 00:00.
  The cap applies per instance and plan within the month.
- Promotion credit (`Credit`) pays for covered usage first: for each charge, the started
  hours inside the promotion's window on a covered plan, at the plan's rate, never more than
  the charge itself; promotions that expire first are spent first.
- An invoice's lines always sum to its totals: tax is computed per line (rate x amount,
  rounded to cents) and the subtotal, tax and total are the sums of the lines.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
HOUR = timedelta(hours=1)
_PERIOD = re.compile(r"(\d{4})-(\d{2})")


def cents(amount: Decimal) -> Decimal:
    """Rounded to the cent, halves away from zero (as on paper)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def to_cents(amount: Decimal) -> int:
    return int(cents(amount) * 100)


def from_cents(value: int) -> Decimal:
    return (Decimal(value) / 100).quantize(CENT)


def money(text: str) -> Decimal:
    """A positive amount of dollars with at most two decimals ("12.50"); ValueError otherwise."""
    try:
        amount = Decimal(text.strip().lstrip("$"))
    except ArithmeticError:
        raise ValueError(f"{text!r} is not an amount of dollars, e.g. 25.00") from None
    if not amount.is_finite() or amount <= 0 or amount != cents(amount) or amount >= Decimal(10) ** 9:
        raise ValueError(f"{text!r} is not a positive amount of dollars with at most two decimals")
    return cents(amount)


@dataclass(frozen=True, order=True)
class Period:
    """A calendar month, UTC."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Period:
        found = _PERIOD.fullmatch(text.strip()) if isinstance(text, str) else None
        if not found or not 1 <= int(found.group(2)) <= 12 or int(found.group(1)) < 1970:
            raise ValueError(f"{text!r} is not a month: use YYYY-MM, e.g. 2026-11")
        return cls(int(found.group(1)), int(found.group(2)))

    @classmethod
    def of(cls, moment: datetime) -> Period:
        return cls(moment.year, moment.month)

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1)

    @property
    def end(self) -> datetime:
        return self.next().start

    def next(self) -> Period:
        return Period(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Period:
        return Period(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True)
class Price:
    """A plan's price: `hourly` per started hour, at most `monthly` per calendar month."""

    label: str
    hourly: Decimal
    monthly: Decimal
    gpu: bool = False

    @classmethod
    def of(cls, label: str, hourly: float | str | Decimal, monthly: float | str | Decimal, gpu: bool = False) -> Price:
        return cls(label, Decimal(str(hourly)), Decimal(str(monthly)), gpu)


@dataclass(frozen=True)
class Segment:
    """One instance on one plan from `start` until `end` (None: still so)."""

    instance_id: int
    label: str
    region: str
    type_id: str
    start: datetime
    end: datetime | None = None


@dataclass(frozen=True)
class Charge:
    """What one instance on one plan costs within a period (up to `until`)."""

    instance_id: int
    label: str
    region: str
    type_id: str
    start: datetime  # the first moment charged in the period
    end: datetime  # the last
    hours: int  # started hours
    unit_price: Decimal  # hourly
    amount: Decimal  # min(hours x hourly, monthly), in cents
    capped: bool
    pieces: tuple[tuple[datetime, datetime], ...]  # the charged spans, clipped to the period


@dataclass(frozen=True)
class Credit:
    """Promotion credit an account holds: `remaining` dollars for usage between `starts` and
    `expires` on plans it `covers` ("all", "gpu", or plan ids)."""

    promotion_id: int
    summary: str
    remaining: Decimal
    covers: frozenset[str]
    starts: datetime
    expires: datetime

    def covers_plan(self, type_id: str, price: Price) -> bool:
        return "all" in self.covers or type_id in self.covers or ("gpu" in self.covers and price.gpu)


@dataclass(frozen=True)
class Applied:
    promotion_id: int
    summary: str
    amount: Decimal  # credit spent, positive


@dataclass(frozen=True)
class Line:
    """An invoice item, Linode's fields."""

    label: str
    type: str  # hourly, promotion
    amount: Decimal
    quantity: int | None
    unit_price: str | None
    start: datetime | None
    end: datetime | None
    region: str | None
    tax: Decimal
    total: Decimal


@dataclass(frozen=True)
class Bill:
    lines: tuple[Line, ...]
    subtotal: Decimal
    tax: Decimal
    total: Decimal


def started_hours(start: datetime, end: datetime) -> int:
    """Hours begun from `start` to `end`: any part of an hour is a whole one."""
    if end <= start:
        return 0
    return math.ceil((end - start) / HOUR)


def _clip(start: datetime, end: datetime, lo: datetime, hi: datetime) -> tuple[datetime, datetime] | None:
    a, b = max(start, lo), min(end, hi)
    return (a, b) if b > a else None


def charges(segments: Iterable[Segment], prices: Mapping[str, Price], period: Period,
            until: datetime | None = None) -> list[Charge]:
    """The charges of `period` (up to `until`, when the month is still running), one per
    instance and plan, in order of first use. KeyError for a plan without a price."""
    hi = min(period.end, until) if until is not None else period.end
    groups: dict[tuple[int, str], list[tuple[Segment, tuple[datetime, datetime]]]] = {}
    for seg in segments:
        piece = _clip(seg.start, seg.end if seg.end is not None else hi, period.start, hi)
        if piece is not None:
            groups.setdefault((seg.instance_id, seg.type_id), []).append((seg, piece))
    out = []
    for (instance_id, type_id), found in groups.items():
        price = prices[type_id]
        found.sort(key=lambda f: f[1])
        pieces = tuple(p for _, p in found)
        hours = sum(started_hours(a, b) for a, b in pieces)
        raw = hours * price.hourly
        amount = cents(min(raw, price.monthly))
        last = found[-1][0]
        out.append(Charge(instance_id, last.label, last.region, type_id, pieces[0][0], pieces[-1][1], hours,
                          price.hourly, amount, raw > price.monthly, pieces))
    out.sort(key=lambda c: (c.start, c.instance_id, c.type_id))
    return out


def covered_amount(charge: Charge, price: Price, starts: datetime, ends: datetime) -> Decimal:
    """The part of `charge` a promotion valid from `starts` to `ends` may pay: the started
    hours inside its window at the hourly rate, never more than the charge."""
    hours = 0
    for a, b in charge.pieces:
        piece = _clip(a, b, starts, ends)
        if piece is not None:
            hours += started_hours(*piece)
    return min(cents(hours * price.hourly), charge.amount)


def apply_credits(found: Sequence[Charge], prices: Mapping[str, Price], credits: Iterable[Credit]) -> list[Applied]:
    """Spend credit on covered usage, promotions expiring first first; each dollar of a
    charge is paid at most once."""
    unpaid = [c.amount for c in found]
    applied = []
    for credit in sorted(credits, key=lambda c: (c.expires, c.promotion_id)):
        left, spent = credit.remaining, ZERO
        for i, charge in enumerate(found):
            if left <= 0:
                break
            price = prices[charge.type_id]
            if not credit.covers_plan(charge.type_id, price):
                continue
            take = min(covered_amount(charge, price, credit.starts, credit.expires), unpaid[i], left)
            if take > 0:
                unpaid[i] -= take
                left -= take
                spent += take
        if spent > 0:
            applied.append(Applied(credit.promotion_id, credit.summary, spent))
    return applied


def _line(label: str, kind: str, amount: Decimal, tax_rate: Decimal, *, quantity: int | None = None,
          unit_price: str | None = None, start: datetime | None = None, end: datetime | None = None,
          region: str | None = None) -> Line:
    tax = cents(amount * tax_rate)
    return Line(label, kind, amount, quantity, unit_price, start, end, region, tax, amount + tax)


def bill(found: Sequence[Charge], prices: Mapping[str, Price], applied: Iterable[Applied],
         tax_rate: Decimal = ZERO) -> Bill:
    """The invoice lines: one per charge, one per promotion applied (a negative amount), and
    the totals as sums of the lines."""
    lines = [_line(f"{prices[c.type_id].label} - {c.label} ({c.instance_id})", "hourly", c.amount, tax_rate,
                   quantity=c.hours, unit_price=format(c.unit_price.normalize(), "f"), start=c.start, end=c.end,
                   region=c.region) for c in found]
    lines += [_line(f"Promotion: {a.summary}", "promotion", -a.amount, tax_rate) for a in applied]
    subtotal = sum((line.amount for line in lines), ZERO)
    tax = sum((line.tax for line in lines), ZERO)
    return Bill(tuple(lines), subtotal, tax, subtotal + tax)


def accrue(segments: Iterable[Segment], prices: Mapping[str, Price], period: Period, credits: Iterable[Credit],
           tax_rate: Decimal = ZERO, until: datetime | None = None) -> tuple[list[Charge], list[Applied], Bill]:
    """Charges, credit spent and the bill of `period` (up to `until`), in one call."""
    found = charges(segments, prices, period, until)
    applied = apply_credits(found, prices, credits)
    return found, applied, bill(found, prices, applied, tax_rate)
