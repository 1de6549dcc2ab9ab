"""Billing objects in Linode's shapes: the account's money fields, promotions, invoices,
invoice items, payments, notifications, and our GPU-trial extension."""

from __future__ import annotations

from decimal import Decimal

from gpucloud.clock import linode_time
from gpucloud.domain.billing import from_cents
from gpucloud.domain.trials import Notice
from gpucloud.services.billing import ActivePromotion, Figures
from gpucloud.store.tables import GpuTrial, Invoice, InvoiceItem, Payment


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


def _dollars(value_cents: int) -> float:
    return usd(from_cents(value_cents))


def invoice(i: Invoice) -> dict:
    tax = _dollars(i.tax_cents)
    return {"id": i.id, "date": linode_time(i.date), "label": i.label, "subtotal": _dollars(i.subtotal_cents),
            "tax": tax, "total": _dollars(i.total_cents), "billing_source": "linode",
            "tax_summary": [{"name": "Tax", "tax": tax}] if i.tax_cents else []}


def invoice_item(item: InvoiceItem) -> dict:
    return {"label": item.label, "type": item.type, "amount": _dollars(item.amount_cents), "quantity": item.quantity,
            "unit_price": item.unit_price, "from": linode_time(item.from_at), "to": linode_time(item.to_at),
            "region": item.region, "tax": _dollars(item.tax_cents), "total": _dollars(item.total_cents)}


def payment(p: Payment) -> dict:
    amount = from_cents(p.usd_cents)
    whole = amount == amount.to_integral()  # Linode's spec says integer; cents when there are any
    return {"id": p.id, "date": linode_time(p.date), "usd": int(amount) if whole else usd(amount)}


def gpu_trial(t: GpuTrial | None) -> dict:
    """Our extension's shape: the latest request and what became of it. `reason`: the
    operator's when declined, else the customer's."""
    if t is None:
        return {"status": "none", "requested": None, "starts": None, "ends": None, "reason": None}
    return {"status": t.status, "requested": linode_time(t.requested_at), "starts": linode_time(t.starts_at),
            "ends": linode_time(t.ends_at), "reason": t.decision_reason if t.status == "declined" else t.reason}


def notification(n: Notice) -> dict:
    return {"entity": None, "label": n.label, "message": n.message, "body": None, "type": n.type,
            "severity": n.severity, "when": linode_time(n.when), "until": linode_time(n.until)}
