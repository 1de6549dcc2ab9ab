"""`gpucloud billing ...`: usage, invoices (closing a month), payments, promo codes, trials."""

from __future__ import annotations

import click

from gpucloud.cli import Context, pass_ctx
from gpucloud.cli.output import emit_json, emit_table, json_option
from gpucloud.clock import linode_time
from gpucloud.services import billing as service


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


COMMANDS = [billing]
