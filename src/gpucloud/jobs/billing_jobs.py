"""The product-wide periodic billing job: close last month's invoices (from the 1st on; a
no-op once done), and end GPU trials by policy."""

from __future__ import annotations

import logging

from gpucloud.jobs.context import JobContext
from gpucloud.services import billing, trials

log = logging.getLogger(__name__)


def billing_sweep(ctx: JobContext) -> None:
    report = billing.close_due(ctx.db, ctx.settings.billing_tax_percent)
    if report.created:
        log.info("closed %s: %d invoice(s)", report.period, len(report.created))
    swept = trials.sweep(ctx.db, ctx.settings)
    if swept.ended or swept.stopped or swept.parked or swept.deleted:
        log.info("GPU trials: %s", swept)


HANDLERS = {"billing_sweep": billing_sweep}
