"""The product-wide periodic billing job: close last month's invoices (from the 1st on; a
no-op once done)."""

from __future__ import annotations

import logging

from gpucloud.jobs.context import JobContext
from gpucloud.services import billing

log = logging.getLogger(__name__)


def billing_sweep(ctx: JobContext) -> None:
    report = billing.close_due(ctx.db, ctx.settings.billing_tax_percent)
    if report.created:
        log.info("closed %s: %d invoice(s)", report.period, len(report.created))


HANDLERS = {"billing_sweep": billing_sweep}
