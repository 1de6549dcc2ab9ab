"""An account's event feed as its customers read it: the last 90 days, newest first, marked
seen up to a point (Linode's semantics)."""

from __future__ import annotations

from datetime import timedelta

from gpucloud.clock import utcnow
from gpucloud.errors import NotFound
from gpucloud.store import events as q
from gpucloud.store.db import Database
from gpucloud.store.tables import Event

RETENTION = timedelta(days=90)


def list_events(db: Database, account_id: int, *, entity_id: int | None = None, entity_type: str | None = None,
                action: str | None = None) -> list[Event]:
    with db.read() as s:
        return q.of_account(s, account_id, since=utcnow() - RETENTION, entity_id=entity_id,
                            entity_type=entity_type, action=action)


def get_event(db: Database, account_id: int, event_id: int) -> Event:
    with db.read() as s:
        event = q.owned(s, account_id, event_id)
        if event is None:
            raise NotFound()
        return event


def mark_seen(db: Database, account_id: int, event_id: int) -> None:
    """This event and all earlier ones of the account are seen."""
    with db.write() as s:
        if q.owned(s, account_id, event_id) is None:
            raise NotFound()
        q.mark_seen_through(s, account_id, event_id)
