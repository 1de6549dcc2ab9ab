"""Customer-visible events (Linode-shaped): creating them and moving them along.

An event goes scheduled -> started -> finished (100 %) or failed, and its
`percent_complete` only ever grows, so a client polling it never sees time run backwards.
Every update is guarded by the status it expects, which makes each one safe to repeat.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Update

from gpucloud.clock import utcnow
from gpucloud.store.tables import EVENT_OPEN_STATUSES, Event

_INSERT = insert(Event).returning(Event.id)  # built once per process


def create(session: Session, *, action: str, account_id: int | None, entity_type: str = "linode",
           entity_id: int | None = None, entity_label: str = "", username: str | None = None,
           message: str = "", secondary_entity: dict | None = None) -> int:
    """A new `scheduled` event in the caller's transaction; its id, for a job to point at. One
    Core INSERT on the session's connection: an ORM flush only to learn the id cost several
    times as much (issue #11)."""
    now = utcnow()
    return int(session.connection().execute(_INSERT, {
        "action": action, "account_id": account_id, "status": "scheduled", "percent_complete": 0,
        "entity_type": entity_type, "entity_id": entity_id, "entity_label": entity_label, "username": username,
        "message": message, "secondary_entity": secondary_entity, "seen": False, "created_at": now,
        "updated_at": now}).scalar_one())


def _open_update(**values) -> Update:
    """An UPDATE of an open event (parameter `event_id`), built once per process."""
    open_event = (Event.id == bindparam("event_id")) & Event.status.in_(EVENT_OPEN_STATUSES)
    return update(Event).where(open_event).values(**values)


_RAISED = case((Event.percent_complete < bindparam("pct"), bindparam("pct")), else_=Event.percent_complete)
_SINCE = func.coalesce(Event.started_at, bindparam("now"))
_START = _open_update(status="started", started_at=_SINCE, percent_complete=_RAISED)
_START_SAYING = _open_update(status="started", started_at=_SINCE, percent_complete=_RAISED,
                             step_message=bindparam("say"))
_ADVANCE = _open_update(percent_complete=_RAISED)
_ADVANCE_SAYING = _open_update(percent_complete=_RAISED, step_message=bindparam("say"))
_FINISH = _open_update(status="finished", percent_complete=100, finished_at=bindparam("now"), started_at=_SINCE)


def mark_started(session: Session, event_id: int, now: datetime | None = None, percent: int = 0,
                 message: str | None = None) -> None:
    """scheduled -> started (a started event stays so, a closed one is left alone), with
    `percent_complete` raised to `percent` and the step's `message` set if given (`step_message`:
    the event's own message, a reason it was created with, stays): a job's claim and its first
    step in one statement."""
    params = {"event_id": event_id, "now": now or utcnow(), "pct": percent, "say": message}
    session.connection().execute(_START if message is None else _START_SAYING, params)


def advance(session: Session, event_id: int, percent: int, message: str | None = None) -> None:
    """Raise `percent_complete` to `percent` (never lower it) on an open event, and set the
    step's `message` if given (`step_message`, as `mark_started`)."""
    params = {"event_id": event_id, "pct": percent, "say": message}
    session.connection().execute(_ADVANCE if message is None else _ADVANCE_SAYING, params)


def mark_finished(session: Session, event_id: int, now: datetime | None = None) -> None:
    session.connection().execute(_FINISH, {"event_id": event_id, "now": now or utcnow()})


def mark_failed(session: Session, event_id: int, message: str, now: datetime | None = None) -> None:
    session.execute(
        update(Event).where(Event.id == event_id, Event.status.in_(EVENT_OPEN_STATUSES))
        .values(status="failed", message=message, finished_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )


def reopen(session: Session, event_id: int) -> None:
    """A failed event whose job an operator re-queued: scheduled again, from 0 %."""
    session.execute(
        update(Event).where(Event.id == event_id, Event.status == "failed")
        .values(status="scheduled", percent_complete=0, message="", step_message="", started_at=None, finished_at=None)
        .execution_options(synchronize_session=False)
    )


# --- reading, as the account's event feed (the public API) ---------------------------------


def recent_of_account(session: Session, account_id: int, limit: int) -> list[Event]:
    """The account's newest `limit` events."""
    return list(session.scalars(select(Event).where(Event.account_id == account_id)
                                .order_by(Event.id.desc()).limit(limit)))


def of_account(session: Session, account_id: int, *, since: datetime | None = None,
               entity_id: int | None = None, entity_type: str | None = None,
               action: str | None = None) -> list[Event]:
    """The account's events, newest first; the optional equalities narrow in the database."""
    stmt = select(Event).where(Event.account_id == account_id).order_by(Event.id.desc())
    if since is not None:
        stmt = stmt.where(Event.created_at >= since)
    if entity_id is not None:
        stmt = stmt.where(Event.entity_id == entity_id)
    if entity_type is not None:
        stmt = stmt.where(Event.entity_type == entity_type)
    if action is not None:
        stmt = stmt.where(Event.action == action)
    return list(session.scalars(stmt))


def owned(session: Session, account_id: int, event_id: int) -> Event | None:
    """The event if it is this account's; another account's event does not exist for it."""
    return session.scalar(select(Event).where(Event.id == event_id, Event.account_id == account_id))


def mark_seen_through(session: Session, account_id: int, event_id: int) -> None:
    """Linode's "seen": this event and every earlier one of the account."""
    session.execute(
        update(Event).where(Event.account_id == account_id, Event.id <= event_id, Event.seen.is_(False))
        .values(seen=True).execution_options(synchronize_session=False)
    )
