"""Finding instances the way operators name them: id, label, host name or GPU PCI address."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gpucloud.store.tables import Account, GpuClaim, GpuRow, Host, Instance


def search_instances(session: Session, query: str = "", limit: int = 100, *, region: str | None = None,
                     status: str | None = None, account_id: int | None = None,
                     type_ids: Collection[str] | None = None) -> list[tuple[Instance, Account, str | None]]:
    """(instance, account, host name) of matching instances, newest first; all of them
    (up to `limit`) for an empty query. A number means an id (or a label that is exactly it);
    other text matches part of a label, a host name or a GPU's PCI address. The filters
    (region, status, account, plans) narrow it further."""
    stmt = (select(Instance, Account, Host.name).join(Account, Instance.account_id == Account.id)
            .outerjoin(Host, Instance.host_id == Host.id).order_by(Instance.id.desc()).limit(limit))
    if region:
        stmt = stmt.where(Instance.region_id == region)
    if status:
        stmt = stmt.where(Instance.status == status)
    if account_id is not None:
        stmt = stmt.where(Instance.account_id == account_id)
    if type_ids is not None:
        stmt = stmt.where(Instance.type_id.in_(list(type_ids)))
    text = query.strip()
    if text.isdigit():
        stmt = stmt.where(or_(Instance.id == int(text), Instance.label == text))
    elif text:
        pattern = f"%{text}%"
        on_gpu = select(GpuClaim.instance_id).join(GpuRow, GpuRow.id == GpuClaim.gpu_id) \
            .where(GpuRow.pci_address.ilike(pattern))
        stmt = stmt.where(or_(Instance.label.ilike(pattern), Host.name.ilike(pattern), Instance.id.in_(on_gpu)))
    return [(i, a, h) for i, a, h in session.execute(stmt)]


def instances_of_account(session: Session, account_id: int) -> list[tuple[Instance, str | None]]:
    """(instance, host name) of an account's instances, oldest first."""
    stmt = (select(Instance, Host.name).outerjoin(Host, Instance.host_id == Host.id)
            .where(Instance.account_id == account_id).order_by(Instance.id))
    return [(i, h) for i, h in session.execute(stmt)]


def instance_with_owner(session: Session, instance_id: int) -> tuple[Instance, Account, Host | None] | None:
    row = session.execute(select(Instance, Account, Host).join(Account, Instance.account_id == Account.id)
                          .outerjoin(Host, Instance.host_id == Host.id).where(Instance.id == instance_id)).first()
    return (row[0], row[1], row[2]) if row else None
