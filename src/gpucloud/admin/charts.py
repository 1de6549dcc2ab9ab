"""The geometry of the capacity chart (the template draws it as inline SVG; no chart library).

Claimed, free and unavailable GPUs are stacked areas over a fixed time window, so the top
edge is the total and a drained host shows as free turning into unavailable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

LAYERS = (("claimed", "claimed"), ("free", "free"), ("unavailable", "unavailable"))


@dataclass(frozen=True)
class Tick:
    at: float  # pixel position along its axis
    label: str


@dataclass(frozen=True)
class Column:
    """An invisible hover target around one sample, with its numbers as a tooltip."""

    x: float
    w: float
    title: str


@dataclass(frozen=True)
class AreaChart:
    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    areas: list[tuple[str, str]]  # (css class, path)
    lines: list[tuple[str, str]]  # (css class, path) of each layer's top edge
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    columns: list[Column]
    empty: bool
    first_at: datetime | None  # the oldest point shown
    partial: bool  # the points cover only the end of the window (samples began recently)


def nice_step(top: float, ticks: int = 4) -> int:
    """A round step (1, 2, 5 x 10^n) that splits 0..top into about `ticks` parts."""
    raw = max(top / ticks, 1)
    magnitude = 10 ** (len(str(int(raw))) - 1)
    for m in (1, 2, 5, 10):
        if m * magnitude >= raw:
            return m * magnitude
    return 10 * magnitude


def capacity_chart(points: list[dict], start: datetime, end: datetime, *, width: int = 760,
                   height: int = 220) -> AreaChart:
    """`points`: [{at, claimed, free, unavailable}] oldest first; those outside start..end are
    left out. Fewer than two points draw no area (`empty`). The x axis spans only the time
    there is data for: on a fresh fleet, samples since its first one fill the width instead
    of a sliver at the right edge of the window (`partial` says so)."""
    left, top, right, bottom = 44, 10, width - 10, height - 24
    window = max((end - start).total_seconds(), 1)
    points = [p for p in points if start <= p["at"] <= end]
    partial = bool(points) and (points[0]["at"] - start).total_seconds() > window / 10
    if len(points) >= 2 and partial:
        start = points[0]["at"]
    span = max((end - start).total_seconds(), 1)
    peak = max((p["claimed"] + p["free"] + p["unavailable"] for p in points), default=0)
    step = nice_step(peak or 4)
    y_max = max(step * -(-peak // step), step)

    def x_of(at: datetime) -> float:
        return round(left + (right - left) * (at - start).total_seconds() / span, 1)

    def y_of(value: float) -> float:
        return round(bottom - (bottom - top) * value / y_max, 1)

    areas, lines = [], []
    if len(points) >= 2:
        xs = [x_of(p["at"]) for p in points]
        below = [0] * len(points)
        for name, css in LAYERS:
            above = [b + p[name] for b, p in zip(below, points, strict=False)]
            upper = " L ".join(f"{x} {y_of(v)}" for x, v in zip(xs, above, strict=False))
            lower = " L ".join(f"{x} {y_of(v)}" for x, v in reversed(list(zip(xs, below, strict=False))))
            areas.append((css, f"M {upper} L {lower} Z"))
            lines.append((css, f"M {upper}"))
            below = above

    y_ticks = [Tick(y_of(v), str(v)) for v in range(0, y_max + 1, step)]
    x_ticks = _time_ticks(start, end, x_of)
    columns = []
    for n, p in enumerate(points):
        x = x_of(p["at"])
        prev = x_of(points[n - 1]["at"]) if n else left
        nxt = x_of(points[n + 1]["at"]) if n + 1 < len(points) else right
        x0, x1 = (prev + x) / 2 if n else left, (x + nxt) / 2 if n + 1 < len(points) else right
        columns.append(Column(round(x0, 1), round(max(x1 - x0, 1), 1),
                              f"{p['at']:%Y-%m-%d %H:%M} UTC · claimed {p['claimed']} · free {p['free']} · "
                              f"unavailable {p['unavailable']}"))
    first_at = points[0]["at"] if points else None
    return AreaChart(width, height, left, top, right, bottom, areas, lines, x_ticks, y_ticks, columns,
                     empty=len(points) < 2, first_at=first_at, partial=partial)


def _time_ticks(start: datetime, end: datetime, x_of) -> list[Tick]:
    span = end - start
    for step in (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1),
                 timedelta(hours=3), timedelta(hours=6),
                 timedelta(hours=12), timedelta(days=1)):
        if span / step <= 8:
            break
    fmt = "%H:%M" if step < timedelta(days=1) else "%b %d"
    first = datetime.min + ((start - datetime.min) // step + 1) * step
    ticks, at = [], first
    while at <= end:
        ticks.append(Tick(x_of(at), at.strftime(fmt)))
        at += step
    return ticks
