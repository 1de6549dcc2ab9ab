"""Promotions: operators' promo codes, customers redeeming them, and the credit an account
holds (`account_promotions`), which billing spends on covered usage first."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gpucloud.catalog import load_catalog
from gpucloud.clock import utcnow
from gpucloud.domain import billing as rules
from gpucloud.errors import GpucloudError
from gpucloud.store import audit
from gpucloud.store import billing as billing_q
from gpucloud.store.db import Database
from gpucloud.store.tables import AccountPromotion, PromoCode

CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{2,63}")
GROUPS = ("all", "gpu")
UNKNOWN_CODE = "Promo code not found"


def covers_problem(covers: list[str]) -> str | None:
    """Why a coverage list is not usable: "all", "gpu" or plan ids, at least one."""
    if not covers:
        return "covers: name at least one of all, gpu or plan ids"
    plans = {p.id for p in load_catalog().plans}
    unknown = [c for c in covers if c not in GROUPS and c not in plans]
    return f"covers: unknown plan(s) {', '.join(unknown)} (all, gpu or plan ids)" if unknown else None


def create_code(db: Database, code: str, *, credit: str, days: int, covers: list[str], redemptions: int,
                actor: str, description: str = "", redeem_by: datetime | None = None) -> PromoCode:
    """A promo code worth `credit` dollars for `days` after redemption, on `covers`, for at
    most `redemptions` accounts; audited."""
    if not CODE.fullmatch(code or ""):
        raise GpucloudError("code: 3-64 letters, digits, - or _, starting with a letter or digit", field="code")
    try:
        amount = rules.money(credit)
    except ValueError as exc:
        raise GpucloudError(f"credit: {exc}", field="credit") from None
    if days < 1 or redemptions < 1:
        raise GpucloudError("days and redemptions must be at least 1")
    if problem := covers_problem(covers):
        raise GpucloudError(problem, field="covers")
    try:
        with db.write() as s:
            row = PromoCode(code=code.upper(), description=description, credit_cents=rules.to_cents(amount),
                            duration_days=days, covers=sorted(set(covers)), max_redemptions=redemptions,
                            redemptions=0, redeem_by=redeem_by, created_by=actor)
            s.add(row)
            s.flush()
            audit.record(s, actor=actor, action="billing.promo_create", target_type="promo_code", target_id=row.code,
                         after={"credit": f"{amount:.2f}", "days": days, "covers": row.covers,
                                "redemptions": redemptions})
            return row
    except IntegrityError:
        raise GpucloudError(f"promo code {code.upper()} exists already", field="code") from None


def list_codes(db: Database) -> list[PromoCode]:
    with db.read() as s:
        return billing_q.promo_codes(s)


def grant(s: Session, account_id: int, *, summary: str, credit_cents: int, covers: list[str], starts: datetime,
          expires: datetime, promo_code_id: int | None = None) -> AccountPromotion:
    """Credit for the account, in the caller's transaction (a redemption, a GPU trial)."""
    row = AccountPromotion(account_id=account_id, promo_code_id=promo_code_id, summary=summary,
                           credit_cents=credit_cents, used_cents=0, covers=covers, starts_at=starts,
                           expires_at=expires)
    s.add(row)
    s.flush()
    return row


def redeem(db: Database, account_id: int, code: str, now: datetime | None = None) -> AccountPromotion:
    """The customer's `POST /account/promo-codes`: one redemption per account and code, never
    more redemptions than the code allows (a conditional increment, so racing redeemers
    cannot overshoot)."""
    moment = now or utcnow()
    text = (code or "").strip().upper()
    try:
        with db.write() as s:
            promo = billing_q.promo_code(s, text)
            if promo is None:
                raise GpucloudError(UNKNOWN_CODE, field="promo_code")
            if promo.redeem_by is not None and promo.redeem_by <= moment:
                raise GpucloudError("This promo code has expired", field="promo_code")
            if not billing_q.take_redemption(s, promo.id):
                raise GpucloudError("This promo code has been fully redeemed", field="promo_code")
            return grant(s, account_id, summary=promo.description or f"Promo code {promo.code}",
                         credit_cents=promo.credit_cents, covers=list(promo.covers), starts=moment,
                         expires=moment + timedelta(days=promo.duration_days), promo_code_id=promo.id)
    except IntegrityError:
        raise GpucloudError("This promo code has already been applied to your account", field="promo_code") from None

