"""`gpucloud check`: verify the invariants the control plane relies on, against the database
and the hosts. One line per violation on stdout and exit status 1; a summary and 0 when all
hold. Read-only: safe to run at any time, e.g. from cron or after an incident."""

from __future__ import annotations

import sys
from datetime import timedelta

import click

from gpucloud.cli import Context, pass_ctx
from gpucloud.cli.output import emit_json, json_option
from gpucloud.services import invariants
from gpucloud.store.tables import Host


@click.command("check")
@click.option("--stuck-after", type=click.FloatRange(min=0), default=300, show_default=True,
              help="Seconds after which a job that no worker is moving counts as stuck.")
@click.option("--no-hosts", is_flag=True, help="Check the database only; do not ask hosts for their domains.")
@json_option
@pass_ctx
def check(ctx: Context, stuck_after: float, no_hosts: bool, as_json: bool) -> None:
    """Claims vs instances vs domains, jobs vs attempts, generations: exit 1 on any violation."""
    settings = ctx.settings
    lister = None if no_hosts else _domain_lister(settings)
    report = invariants.check(ctx.db, stuck_after=timedelta(seconds=stuck_after), list_domains=lister)
    if as_json:
        emit_json({"ok": report.ok, "counts": report.counts, "hosts_visited": report.hosts_visited,
                   "violations": [{"rule": v.rule, "text": v.text} for v in report.violations]})
    else:
        for violation in report.violations:
            click.echo(violation.line())
        if report.ok:
            seen = ", ".join(f"{n} {name}" for name, n in report.counts.items())
            click.echo(f"ok: {seen}; {report.hosts_visited} hosts asked for their domains")
    if not report.ok:
        sys.exit(1)


def _domain_lister(settings) -> invariants.DomainLister:
    from gpucloud.hypervisor.base import DriverError
    from gpucloud.hypervisor.drivers import driver_for

    def list_domains(host: Host) -> list[tuple[str, str]] | None:
        try:
            return [(d.name, d.state) for d in driver_for(host, settings).list_domains()]
        except DriverError:
            return None

    return list_domains


COMMANDS = [check]
