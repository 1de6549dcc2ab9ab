"""Queries about money: invoices and their items, payments, promotions held by accounts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from gpucloud.store.tables import AccountPromotion, Invoice, InvoiceItem, Payment, PromoCode


def invoiced_cents(s: Session, account_id: int) -> int:
    return int(s.scalar(select(func.coalesce(func.sum(Invoice.total_cents), 0))
                        .where(Invoice.account_id == account_id)) or 0)


def paid_cents(s: Session, account_id: int) -> int:
    return int(s.scalar(select(func.coalesce(func.sum(Payment.usd_cents), 0))
                        .where(Payment.account_id == account_id)) or 0)


def promotions_overlapping(s: Session, account_id: int, since: datetime, until: datetime, *,
                           lock: bool = False) -> list[AccountPromotion]:
    """The account's promotions valid at some moment of [since, until) with credit left;
    `lock`: held until commit (a close spends them: two closes of one account's months queue)."""
    stmt = select(AccountPromotion).where(
        AccountPromotion.account_id == account_id, AccountPromotion.starts_at < until,
        AccountPromotion.expires_at > since, AccountPromotion.used_cents < AccountPromotion.credit_cents
    ).order_by(AccountPromotion.expires_at, AccountPromotion.id)
    return list(s.scalars(stmt.with_for_update() if lock else stmt))


def invoices_of(s: Session, account_id: int) -> list[Invoice]:
    return list(s.scalars(select(Invoice).where(Invoice.account_id == account_id).order_by(Invoice.id)))


def invoice_of(s: Session, account_id: int, invoice_id: int) -> Invoice | None:
    return s.scalar(select(Invoice).where(Invoice.id == invoice_id, Invoice.account_id == account_id))


def items_of(s: Session, invoice_id: int) -> list[InvoiceItem]:
    return list(s.scalars(select(InvoiceItem).where(InvoiceItem.invoice_id == invoice_id)
                          .order_by(InvoiceItem.position)))


def payments_of(s: Session, account_id: int) -> list[Payment]:
    return list(s.scalars(select(Payment).where(Payment.account_id == account_id).order_by(Payment.id)))


def invoice_for(s: Session, account_id: int, period: str) -> Invoice | None:
    return s.scalar(select(Invoice).where(Invoice.account_id == account_id, Invoice.period == period))


def invoiced_accounts(s: Session, period: str) -> set[int]:
    return set(s.scalars(select(Invoice.account_id).where(Invoice.period == period)))


def spend_promotion(s: Session, promotion_id: int, amount_cents: int) -> None:
    """Credit a closed invoice took (added in the database, so concurrent writers add up)."""
    s.execute(update(AccountPromotion).where(AccountPromotion.id == promotion_id)
              .values(used_cents=AccountPromotion.used_cents + amount_cents))


def all_invoices(s: Session, limit: int = 200) -> list[Invoice]:
    return list(s.scalars(select(Invoice).order_by(Invoice.id.desc()).limit(limit)))


def promotions_of(s: Session, account_id: int) -> list[AccountPromotion]:
    return list(s.scalars(select(AccountPromotion).where(AccountPromotion.account_id == account_id)
                          .order_by(AccountPromotion.id)))


def promo_codes(s: Session) -> list[PromoCode]:
    return list(s.scalars(select(PromoCode).order_by(PromoCode.id)))


def promo_code(s: Session, code: str) -> PromoCode | None:
    return s.scalar(select(PromoCode).where(PromoCode.code == code))


def take_redemption(s: Session, promo_code_id: int) -> bool:
    """Count one redemption; False when the code is fully redeemed (checked in the UPDATE, so
    racing redeemers never take more than `max_redemptions`)."""
    taken = s.execute(update(PromoCode).where(PromoCode.id == promo_code_id,
                                              PromoCode.redemptions < PromoCode.max_redemptions)
                      .values(redemptions=PromoCode.redemptions + 1))
    return taken.rowcount == 1  # type: ignore[attr-defined]
