"""Capacity samples: the inventory per region and GPU model at one instant, kept for charts.

Several processes may run a sampler against one database; each sample period (a "slot",
a whole number of periods since the epoch) is taken by exactly one of them through a
compare-and-set on a counter row, in the same transaction that writes the rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from gpucloud.store.tables import CapacitySample, Counter

SLOT_COUNTER = "capacity-sample-slot"


def claim_slot(session: Session, slot: int) -> bool:
    """True when this transaction takes `slot` (no sample for it or a later one exists yet).

    The UPDATE's condition is re-checked on the row's newest version by PostgreSQL after a
    concurrent claimer commits, and SQLite writers are serial, so two claimers never both win."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(Counter).values(name=SLOT_COUNTER, value=-1)
                    .on_conflict_do_nothing(index_elements=[Counter.name]))
    result = session.execute(update(Counter).where(Counter.name == SLOT_COUNTER, Counter.value < slot)
                             .values(value=slot).execution_options(synchronize_session=False))
    return cast(CursorResult, result).rowcount == 1


def add_samples(session: Session, at: datetime, rows: list[dict]) -> None:
    """One sample row per capacity row (shaped like `services.capacity.capacity`'s)."""
    for r in rows:
        session.add(CapacitySample(at=at, region_id=r["region"], gpu_model_id=r["gpu_model"], total=r["total"],
                                   claimed=r["claimed"], free=r["free"], unavailable=r["unavailable"]))
    session.flush()


def samples_since(session: Session, since: datetime, *, region: str | None = None,
                  gpu_model: str | None = None) -> list[CapacitySample]:
    stmt = select(CapacitySample).where(CapacitySample.at >= since).order_by(CapacitySample.at, CapacitySample.id)
    if region:
        stmt = stmt.where(CapacitySample.region_id == region)
    if gpu_model:
        stmt = stmt.where(CapacitySample.gpu_model_id == gpu_model)
    return list(session.scalars(stmt))


def prune_before(session: Session, before: datetime) -> int:
    result = session.execute(delete(CapacitySample).where(CapacitySample.at < before)
                             .execution_options(synchronize_session=False))
    return cast(CursorResult, result).rowcount
