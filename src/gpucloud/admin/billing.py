"""What billing's admin partials read (`_account_billing.html`, `_dashboard_billing.html`),
as template globals: each partial is included by one line in a page another stream owns."""

from __future__ import annotations

from fastapi import Request

from gpucloud.services import billing, trials


def account_panel(request: Request, account_id: int) -> dict:
    admin = request.app.state.admin
    found = billing.account_billing(admin.db, account_id, admin.settings.billing_tax_percent)
    return {"b": found, "trial": trials.latest(admin.db, account_id)}


def dashboard_panel(request: Request) -> dict:
    db = request.app.state.admin.db
    rates = billing.run_rates(db)
    held = [r for r in trials.listing(db) if r.gpus_held and r.trial.status in ("active", "ended")]
    return {"rates": rates, "accrued": sum(r.accrued for r in rates), "run_rate": sum(r.run_rate for r in rates),
            "trial_gpus": sum(r.gpus_held for r in held), "trial_accounts": held,
            "pending": len(trials.listing(db, "pending"))}
