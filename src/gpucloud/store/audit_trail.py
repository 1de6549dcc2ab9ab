"""Reading the audit log for one page: a host's entries together with its GPUs'."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from gpucloud.store.tables import AuditEntry


def entries_about(session: Session, targets: list[tuple[str, str]], *, id_prefixes: Sequence[tuple[str, str]] = (),
                  limit: int = 50) -> list[AuditEntry]:
    """Newest first: entries whose (target_type, target_id) is in `targets`, or whose
    target_id starts with a prefix given for its type (GPUs are audited as `host/address`)."""
    conditions = [and_(AuditEntry.target_type == t, AuditEntry.target_id == i) for t, i in targets]
    conditions += [and_(AuditEntry.target_type == t, AuditEntry.target_id.startswith(p, autoescape=True))
                   for t, p in id_prefixes]
    if not conditions:
        return []
    stmt = select(AuditEntry).where(or_(*conditions)).order_by(AuditEntry.id.desc()).limit(limit)
    return list(session.scalars(stmt))
