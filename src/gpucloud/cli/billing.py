"""`gpucloud billing ...`: usage, invoices (closing a month), payments, promo codes, trials."""

from __future__ import annotations

import click

from gpucloud.cli import Context, pass_ctx
from gpucloud.cli.output import cli_actor, emit_json, emit_table, json_option, parse_moment
from gpucloud.clock import linode_time
from gpucloud.domain.billing import Period, from_cents
from gpucloud.services import billing as service
from gpucloud.services import promotions, trials
from gpucloud.store.tables import PromoCode


@click.group("billing")
def billing() -> None:
    """Metered usage, invoices, payments, promo codes and GPU trials."""


@billing.command("usage")
@click.option("--account", "account_ref", required=True, help="Account id or e-mail.")
@json_option
@pass_ctx
def usage(ctx: Context, account_ref: str, as_json: bool) -> None:
    """This month's accrual so far, per instance and plan (after promotion credit)."""
    accrual = service.current_usage(ctx.db, account_ref, tax_percent=ctx.settings.billing_tax_percent)
    rows = [{"label": line.label, "type": line.type, "region": line.region, "hours": line.quantity,
             "unit_price": line.unit_price, "from": linode_time(line.start), "to": linode_time(line.end),
             "amount": f"{line.amount:.2f}", "tax": f"{line.tax:.2f}", "total": f"{line.total:.2f}"}
            for line in accrual.bill.lines]
    totals = {"subtotal": f"{accrual.bill.subtotal:.2f}", "tax": f"{accrual.bill.tax:.2f}",
              "total": f"{accrual.bill.total:.2f}"}
    if as_json:
        emit_json({"account": accrual.account_id, "period": str(accrual.period), "until": linode_time(accrual.until),
                   "items": rows, **totals})
        return
    emit_table(rows, [("label", "item"), ("region", "region"), ("hours", "hours"), ("unit_price", "$/h"),
                      ("from", "from"), ("to", "to"), ("amount", "amount")],
               title=f"account {accrual.account_id}, {accrual.period} until {linode_time(accrual.until)}")
    click.echo(f"subtotal {totals['subtotal']}  tax {totals['tax']}  total {totals['total']} USD")


@billing.command("close")
@click.option("--period", required=True, help="The month to close, YYYY-MM (it must be over).")
@json_option
@pass_ctx
def close(ctx: Context, period: str, as_json: bool) -> None:
    """Write the month's invoices, one per account with usage; safe to rerun (exactly once)."""
    report = service.close_month(ctx.db, _period(period), ctx.settings.billing_tax_percent)
    if as_json:
        emit_json({"period": str(report.period), "created": report.created, "already": report.already})
    else:
        click.echo(f"{report.period}: {len(report.created)} invoice(s) written, {report.already} already closed")


@billing.command("invoices")
@click.option("--account", "account_ref", help="Account id or e-mail (default: every account, newest first).")
@json_option
@pass_ctx
def invoices(ctx: Context, account_ref: str | None, as_json: bool) -> None:
    """Invoices written so far."""
    rows = [{"id": i.id, "account": i.account_id, "period": i.period, "date": linode_time(i.date),
             "subtotal": f"{from_cents(i.subtotal_cents):.2f}", "tax": f"{from_cents(i.tax_cents):.2f}",
             "total": f"{from_cents(i.total_cents):.2f}"}
            for i in service.all_invoices(ctx.db, account_ref)]
    if as_json:
        emit_json(rows)
    else:
        emit_table(rows, [("id", "id"), ("account", "account"), ("period", "period"), ("subtotal", "subtotal"),
                          ("tax", "tax"), ("total", "total")])


@billing.command("payment")
@click.option("--account", "account_ref", required=True, help="Account id or e-mail.")
@click.option("--amount", required=True, help="US dollars received, e.g. 250.00.")
@click.option("--note", default="", help="Where it came from (wire reference, cheque number...).")
@click.option("--date", "when", help="When it was received (UTC date or time; default: now).")
@json_option
@pass_ctx
def payment(ctx: Context, account_ref: str, amount: str, note: str, when: str | None, as_json: bool) -> None:
    """Record a payment received outside gpucloud (no card processing here); audited."""
    paid = service.record_payment(ctx.db, account_ref, amount, actor=cli_actor(), note=note,
                                  date=parse_moment("--date", when))
    if as_json:
        emit_json({"id": paid.id, "account": paid.account_id, "usd": f"{from_cents(paid.usd_cents):.2f}",
                   "date": linode_time(paid.date)})
    else:
        click.echo(f"payment {paid.id}: {from_cents(paid.usd_cents):.2f} USD from account {paid.account_id}")


def _period(text: str) -> Period:
    try:
        return Period.parse(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--period") from None




@billing.group("promo")
def promo() -> None:
    """Promo codes customers redeem (`linode-cli account promo-add --promo_code CODE`)."""


@promo.command("create")
@click.argument("code")
@click.option("--credit", required=True, help="US dollars of credit, e.g. 100.00.")
@click.option("--days", type=int, required=True, help="How long the credit lasts after redemption.")
@click.option("--covers", default="all", show_default=True,
              help="Comma separated: all, gpu, or plan ids (e.g. g1-gpu-rtx6000-1).")
@click.option("--redemptions", type=int, default=1, show_default=True, help="How many accounts may redeem it.")
@click.option("--redeem-by", help="Last moment it can be redeemed (UTC date or time).")
@click.option("--description", default="", help="What customers see as the promotion's summary.")
@json_option
@pass_ctx
def promo_create(ctx: Context, code: str, credit: str, days: int, covers: str, redemptions: int,
                 redeem_by: str | None, description: str, as_json: bool) -> None:
    """Create a promo code (audited)."""
    row = promotions.create_code(ctx.db, code, credit=credit, days=days,
                                 covers=[c.strip() for c in covers.split(",") if c.strip()],
                                 redemptions=redemptions, actor=cli_actor(), description=description,
                                 redeem_by=parse_moment("--redeem-by", redeem_by))
    if as_json:
        emit_json(_promo_row(row))
    else:
        click.echo(f"promo code {row.code}: {from_cents(row.credit_cents):.2f} USD for {row.duration_days} days "
                   f"on {', '.join(row.covers)}, {row.max_redemptions} redemption(s)")


@promo.command("list")
@json_option
@pass_ctx
def promo_list(ctx: Context, as_json: bool) -> None:
    """Every promo code and how often it was redeemed."""
    rows = [_promo_row(p) for p in promotions.list_codes(ctx.db)]
    if as_json:
        emit_json(rows)
    else:
        emit_table(rows, [("code", "code"), ("credit", "credit"), ("days", "days"), ("covers", "covers"),
                          ("redeemed", "redeemed"), ("redemptions", "of"), ("redeem_by", "redeem by")])


def _promo_row(p: PromoCode) -> dict:
    return {"code": p.code, "credit": f"{from_cents(p.credit_cents):.2f}", "days": p.duration_days,
            "covers": p.covers, "redeemed": p.redemptions, "redemptions": p.max_redemptions,
            "redeem_by": linode_time(p.redeem_by), "description": p.description}



@billing.group("trial")
def trial() -> None:
    """One-week GPU trial requests: list, approve, decline (audited)."""


@trial.command("list")
@click.option("--status", type=click.Choice(["pending", "active", "declined", "ended"]), help="Only these.")
@json_option
@pass_ctx
def trial_list(ctx: Context, status: str | None, as_json: bool) -> None:
    """Trial requests, newest first, with the GPUs their accounts hold now."""
    rows = [_trial_row(r) for r in trials.listing(ctx.db, status)]
    if as_json:
        emit_json(rows)
    else:
        emit_table(rows, [("id", "id"), ("account", "account"), ("email", "e-mail"), ("status", "status"),
                          ("requested", "requested"), ("ends", "ends"), ("gpus_held", "GPUs held"),
                          ("reason", "reason")])


@trial.command("approve")
@click.argument("trial_id", type=int)
@click.option("--why", default="", help="The reason, kept in the audit log (required).")
@pass_ctx
def trial_approve(ctx: Context, trial_id: int, why: str) -> None:
    """Open GPU plans to the account and cover its GPU usage for the trial, in one step."""
    done = trials.approve(ctx.db, ctx.settings, trial_id, actor=cli_actor(), why=why)
    click.echo(f"GPU trial {done.id} approved: account {done.account_id} until {linode_time(done.ends_at)} UTC")


@trial.command("decline")
@click.argument("trial_id", type=int)
@click.option("--why", default="", help="The reason; the customer reads it (required).")
@pass_ctx
def trial_decline(ctx: Context, trial_id: int, why: str) -> None:
    """Decline a request; the customer may ask again."""
    done = trials.decline(ctx.db, trial_id, actor=cli_actor(), why=why)
    click.echo(f"GPU trial {done.id} declined")


def _trial_row(r: trials.TrialRow) -> dict:
    t = r.trial
    return {"id": t.id, "account": t.account_id, "email": r.email, "status": t.status,
            "requested": linode_time(t.requested_at), "starts": linode_time(t.starts_at),
            "ends": linode_time(t.ends_at), "reason": t.reason, "decision": t.decision_reason,
            "decided_by": t.decided_by, "disks_until": linode_time(t.disks_until), "gpu_instances": r.gpu_instances,
            "gpus_held": r.gpus_held}


COMMANDS = [billing]
