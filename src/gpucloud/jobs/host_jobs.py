"""Periodic per-host jobs: the health check, and reconciliation of what the database believes
against what the hypervisor reports."""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError

from gpucloud.domain import lifecycle
from gpucloud.domain.guest import instance_id_from_domain
from gpucloud.hypervisor.base import RUNNING, SHUTOFF, DriverError
from gpucloud.jobs.context import JobContext
from gpucloud.services import guest_stats, guests, host_health
from gpucloud.store import events
from gpucloud.store.instances import has_unfinished_job, on_host
from gpucloud.store.jobs import enqueue
from gpucloud.store.tables import Host, Instance

log = logging.getLogger(__name__)


def host_check(ctx: JobContext) -> None:
    """Ask the host for its domains; count misses, mark it down or back up. A failed check
    is the outcome being measured, not a failed job."""
    try:
        ctx.driver(ctx.host).list_domains()
    except DriverError as exc:
        if host_health.record_missed(ctx.db, ctx.host, exc.reason, ctx.settings.host_down_after_missed):
            log.warning("host %s marked down: %s", ctx.host_id, exc.reason)
        return
    if host_health.record_seen(ctx.db, ctx.host):
        with ctx.db.write() as s:
            enqueue(s, kind="reconcile", host_id=ctx.host, max_attempts=1)
    _sample(ctx)


def _sample(ctx: JobContext) -> None:
    """Read the guests' counters when a reading is due. A host that answers but gives no
    counters is still up: the miss is logged, not counted."""
    if not guest_stats.due(ctx.db, ctx.settings, ctx.host):
        return
    try:
        guest_stats.record(ctx.db, ctx.settings, ctx.host, ctx.driver(ctx.host).domain_stats())
    except DriverError as exc:
        log.warning("host %s: no guest counters this time: %s", ctx.host_id, exc.reason)
    except IntegrityError:  # an instance removed meanwhile; the next check reads again
        log.info("host %s: an instance went away while its counters were written", ctx.host_id)


def reconcile(ctx: JobContext) -> None:
    """Compare domains with instances and fix what is safe:
    - a guest of ours that should not exist (its instance is gone, or lives elsewhere) is
      destroyed and undefined, and operators are told: it may hold a GPU someone else has;
    - an instance whose domain is missing is defined again (and started if it should run);
    - a status that disagrees with the domain's state follows the domain (a guest powered
      off from inside is `offline`); one left `offline` by a host outage is booted again
      when the customer wanted it running and its watchdog is on.
    Instances with work in flight are left to their jobs."""
    driver = ctx.driver(ctx.host)
    domains = {d.name: d for d in driver.list_domains()}
    with ctx.db.read() as s:
        host = s.get(Host, ctx.host)
        mine = {i.id: i for i in on_host(s, ctx.host)}
        busy = {i for i in mine if has_unfinished_job(s, i)}
    if host is None:
        return  # removed since the job was queued
    for name in domains:
        instance_id = instance_id_from_domain(name)
        if instance_id is None or instance_id in mine:
            continue
        driver.destroy(name)
        driver.undefine(name)
        _tell_operators(ctx, host, "reconcile_stray_domain",
                        f"{name} ran on {host.name} without an instance there; destroyed and undefined")
    for instance in mine.values():
        if instance.id in busy or instance.status not in (lifecycle.RUNNING, lifecycle.OFFLINE):
            continue
        name = f"gpucloud-{instance.id}"
        domain = domains.get(name)
        if domain is None:
            driver.define(guests.domain_spec(ctx.db, instance.id))
            if instance.status == lifecycle.RUNNING:
                driver.start(name)
            _tell_operators(ctx, host, "reconcile_missing_domain",
                            f"{name} was missing on {host.name}; defined again")
            continue
        _follow_domain(ctx, instance, domain.state)


def _follow_domain(ctx: JobContext, instance: Instance, state: str) -> None:
    with ctx.db.write() as s:
        current = s.get(Instance, instance.id)
        if current is None or current.status != instance.status:
            return  # it moved on meanwhile
        if state == RUNNING and current.status == lifecycle.OFFLINE:
            current.status, current.status_reason = lifecycle.RUNNING, ""
        elif state == SHUTOFF and current.status == lifecycle.RUNNING:
            current.status, current.status_reason = lifecycle.OFFLINE, "powered off from inside the guest"
            current.booted = False
        elif (state == SHUTOFF and current.status == lifecycle.OFFLINE and current.booted
              and current.watchdog_enabled and current.status_reason == host_health.HOST_UNREACHABLE):
            current.status, current.status_reason = lifecycle.BOOTING, ""
            event_id = events.create(s, action="lassie_reboot", account_id=current.account_id,
                                     entity_id=current.id, entity_label=current.label, username="watchdog",
                                     message="booted again after its host came back")
            enqueue(s, kind="boot", instance_id=current.id, host_id=current.host_id, event_id=event_id)


def _tell_operators(ctx: JobContext, host: Host, action: str, message: str) -> None:
    log.warning(message)
    with ctx.db.write() as s:
        events.create(s, action=action, account_id=None, entity_type="host", entity_id=host.id,
                      entity_label=host.name, message=message)


HANDLERS = {"host_check": host_check, "reconcile": reconcile}
