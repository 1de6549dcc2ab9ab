"""Billing objects in Linode's shapes: the account's money fields, promotions, invoices,
invoice items, payments, notifications, and our GPU-trial extension."""

from __future__ import annotations

from decimal import Decimal

from gpucloud.clock import linode_time
from gpucloud.services.billing import ActivePromotion, Figures


def usd(amount: Decimal) -> float:
    """Linode's JSON numbers for dollars (two decimals)."""
    return float(amount)


def active_promotion(a: ActivePromotion) -> dict:
    p = a.promotion
    covers = list(p.covers)
    return {
        "summary": p.summary,
        "description": f"{p.summary}: credit for {', '.join(covers) or 'all'} usage until {linode_time(p.expires_at)}",
        "credit_monthly_cap": f"{a.remaining + a.this_month:.2f}",
        "credit_remaining": f"{a.remaining:.2f}",
        "this_month_credit_remaining": f"{a.remaining:.2f}",
        "expire_dt": linode_time(p.expires_at),
        "image_url": "",
        "service_type": "all" if "all" in covers else "linode",
    }


def account_money(f: Figures) -> dict:
    """The fields of GET /account that billing owns."""
    return {
        "balance": usd(f.balance),
        "balance_uninvoiced": usd(f.uninvoiced),
        "active_promotions": [active_promotion(a) for a in f.promotions],
    }
