"""Time, in one place: naive UTC datetimes everywhere (Linode formats times without a zone)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def linode_time(value: datetime | None) -> str | None:
    """Linode's wire format: YYYY-MM-DDTHH:MM:SS, UTC, no zone, no fraction."""
    return value.strftime("%Y-%m-%dT%H:%M:%S") if value else None
