"""The one-week GPU trial, pure: what the customer is told and when.

Notifications follow Linode's model (the account's current notices, not a log): while the
trial runs there is one saying until when; from 2 days before its end one saying it ends
in 2 days, from 1 day before one saying tomorrow; once ended, one saying what happened to the
GPU instances and until when their disks are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

PENDING, ACTIVE, DECLINED, ENDED = "pending", "active", "declined", "ended"
OPEN = (PENDING, ACTIVE, ENDED)  # a new request is refused while one of these is the latest
WHAT_NEXT = "to keep using GPU plans, ask us to open your account to paying GPU use"


@dataclass(frozen=True)
class Notice:
    type: str  # Linode's notification types: promotion, notice
    severity: str  # minor, major, critical
    label: str
    message: str
    when: datetime | None
    until: datetime | None


def day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def ended_reason(ends: datetime, disks_until: datetime | None) -> str:
    """What a customer who boots or creates a GPU instance after the trial is told."""
    kept = f"; your stopped GPU instances and their disks are kept until {day(disks_until)}" if disks_until else ""
    return f"Your GPU trial ended on {day(ends)}; {WHAT_NEXT}{kept}."


def notices(status: str, *, starts: datetime | None, ends: datetime | None, disks_until: datetime | None,
            decision: str | None, now: datetime) -> list[Notice]:
    if status == PENDING:
        return [Notice("notice", "minor", "GPU trial requested",
                       "Your GPU trial request is waiting for review; we will open GPU plans to you once approved.",
                       None, None)]
    if status == DECLINED:
        return [Notice("notice", "minor", "GPU trial declined",
                       f"Your GPU trial request was declined: {decision or 'no reason given'}.", None, None)]
    if status not in (ACTIVE, ENDED) or starts is None or ends is None:
        return []
    if status == ENDED or now >= ends:
        stopped = (f" Your GPU instances were shut down and their GPUs released; their disks are kept until "
                   f"{day(disks_until)}, then deleted." if disks_until else "")
        return [Notice("notice", "critical", "GPU trial ended",
                       f"Your GPU trial ended on {day(ends)}.{stopped} To keep using GPU plans, ask us to open "
                       f"your account to paying GPU use.", ends, disks_until)]
    left = ends - now
    if left <= timedelta(days=1):
        return [Notice("notice", "major", "GPU trial ends tomorrow",
                       f"Your GPU trial ends in less than a day, on {day(ends)}.", ends - timedelta(days=1), ends)]
    if left <= timedelta(days=2):
        return [Notice("notice", "major", "GPU trial ends in 2 days",
                       f"Your GPU trial ends in 2 days, on {day(ends)}.", ends - timedelta(days=2), ends)]
    return [Notice("promotion", "minor", "GPU trial started",
                   f"Your GPU trial started on {day(starts)}: GPU plans are open to you, and their usage is "
                   f"covered by credit, until {day(ends)}.", starts, ends)]
