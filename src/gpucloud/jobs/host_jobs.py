"""The host sweep: health checks and reconciliation a shard of hosts at a time, and the
per-host repair a sweep starts where it finds something to repair.

One `host_sweep` job per shard of `host_sweep_shard_size` host ids runs every
`host_check_seconds` (a periodic job like any other, so several workers share the shards).
It asks each host of its shard for its domains, `host_sweep_threads` hosts at a time, through
the driver calls a job on that host makes; writes what it learned in one transaction (only a
host going down or coming back writes more than two counting statements); compares the
domains of the hosts that answered with the database and queues a `reconcile` job for each
host where they disagree, and for each host back up; and hands in the guests' counters where
a reading is due. A fleet of thousands costs the queue a few jobs per period, not one per
host. A sweep killed midway has written all its checks or none: the next one checks again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from sqlalchemy.exc import IntegrityError

from gpucloud.clock import utcnow
from gpucloud.domain import lifecycle
from gpucloud.domain.guest import domain_name, instance_id_from_domain
from gpucloud.hypervisor.base import RUNNING, SHUTOFF, DomainInfo, DriverError
from gpucloud.hypervisor.drivers import driver_for
from gpucloud.jobs.context import JobContext
from gpucloud.jobs.queue import PermanentJobError
from gpucloud.services import guest_stats, guests, host_health
from gpucloud.store import events, fleet
from gpucloud.store import jobs as store_jobs
from gpucloud.store.instances import GuestState, guest_states
from gpucloud.store.tables import Host, Instance

log = logging.getLogger(__name__)

SWEPT = ("active", "draining", "down")  # down hosts too, so that they can come back
RECONCILED = ("active", "draining")
REPAIR_AT_MOST_EVERY = timedelta(minutes=1)  # per host
Listing = dict[str, DomainInfo]
T = TypeVar("T")
R = TypeVar("R")


def host_sweep(ctx: JobContext) -> None:
    """Check the shard's hosts, write the outcome, start repairs where needed. A failed
    check is the outcome being measured, not a failed job."""
    shard = ctx.payload.get("shard")
    if not isinstance(shard, int):
        raise PermanentJobError(f"job {ctx.id}: a host sweep needs its shard number, not {shard!r}")
    with ctx.db.read() as s:
        hosts = {h.id: h for h in fleet.hosts_in_shard(s, shard, ctx.settings.host_sweep_shard_size, SWEPT)}
    if not hosts:
        return  # the shard emptied since the job was queued; no next run is chained
    answered, missed = _check_all(ctx, list(hosts.values()))
    ctx.check()  # another worker took this sweep over: it writes, not us
    down, back = host_health.record_checks(ctx.db, list(answered), missed, ctx.settings.host_down_after_missed)
    for host_id in down:
        log.warning("host %s marked down: %s", hosts[host_id].name, missed[host_id])
    for host_id in back:
        log.info("host %s answers again", hosts[host_id].name)
    _start_repairs(ctx, set(back) | _drifting(ctx, hosts, answered))
    _sample(ctx, [hosts[h] for h in answered])


def _check_all(ctx: JobContext, hosts: list[Host]) -> tuple[dict[int, Listing], dict[int, str]]:
    """({host: its domains} of the hosts that answered, {host: why} of those that did not).
    A host whose check broke in an unexpected way is in neither: logged, tried next time."""

    def check(host: Host) -> tuple[int, Listing | str | None]:
        try:
            return host.id, {d.name: d for d in driver_for(host, ctx.settings).list_domains()}
        except DriverError as exc:
            return host.id, exc.reason
        except Exception:
            log.exception("host %s: the health check broke", host.name)
            return host.id, None

    answered: dict[int, Listing] = {}
    missed: dict[int, str] = {}
    for host_id, result in _concurrently(ctx, check, hosts):
        if isinstance(result, dict):
            answered[host_id] = result
        elif isinstance(result, str):
            missed[host_id] = result
    return answered, missed


def _concurrently(ctx: JobContext, fn: Callable[[T], R], items: list[T]) -> list[R]:
    """`fn` of each item, `host_sweep_threads` at a time (the driver calls mostly wait)."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(ctx.settings.host_sweep_threads, len(items)),
                            thread_name_prefix=f"sweep-{ctx.id}") as pool:
        return list(pool.map(fn, items))


def _drifting(ctx: JobContext, hosts: Mapping[int, Host], answered: Mapping[int, Listing]) -> set[int]:
    """Hosts (active or draining) whose domains disagree with the database: one read for all."""
    wanted = [h for h in answered if hosts[h].status in RECONCILED]
    with ctx.db.read() as s:
        on_host: dict[int, list[GuestState]] = defaultdict(list)
        for guest in guest_states(s, wanted):
            on_host[guest.host_id].append(guest)
    return {h for h in wanted if plan_repairs(answered[h], on_host[h])}


def _start_repairs(ctx: JobContext, host_ids: set[int]) -> None:
    """A `reconcile` job for each of these hosts, unless one is queued or running, or ended
    less than `REPAIR_AT_MOST_EVERY` ago: a repair that keeps failing is tried again then,
    not on every sweep (a failed one stays on the job board for operators)."""
    if not host_ids:
        return
    with ctx.db.write() as s:
        for host_id in store_jobs.hosts_without_job(s, "reconcile", sorted(host_ids),
                                                    utcnow() - REPAIR_AT_MOST_EVERY):
            store_jobs.enqueue(s, kind="reconcile", host_id=host_id, max_attempts=1)


def _sample(ctx: JobContext, answered: list[Host]) -> None:
    """Read the guests' counters where a reading is due. A host that answers but gives no
    counters is still up: the miss is logged, not counted."""
    by_id = {h.id: h for h in answered}
    due = guest_stats.due(ctx.db, ctx.settings, list(by_id))

    def sample(host: Host) -> None:
        try:
            guest_stats.record(ctx.db, ctx.settings, host.id, driver_for(host, ctx.settings).domain_stats())
        except DriverError as exc:
            log.warning("host %s: no guest counters this time: %s", host.name, exc.reason)
        except IntegrityError:  # an instance removed meanwhile; the next sweep reads again
            log.info("host %s: an instance went away while its counters were written", host.name)

    _concurrently(ctx, sample, [by_id[h] for h in sorted(due)])


@dataclass
class Repairs:
    """What reconciling a host would do; empty (false) when its domains agree with the database."""

    strays: list[str] = field(default_factory=list)  # our domains without their instance here
    missing: list[GuestState] = field(default_factory=list)  # instances whose domain is gone
    follow: list[tuple[GuestState, str]] = field(default_factory=list)  # (instance, its domain's state)

    def __bool__(self) -> bool:
        return bool(self.strays or self.missing or self.follow)


def plan_repairs(domains: Mapping[str, DomainInfo], on_host: list[GuestState]) -> Repairs:
    """The one rule of reconciliation, for the sweep that looks and the job that acts.
    Instances with work in flight are left to their jobs."""
    mine = {g.id for g in on_host}
    repairs = Repairs(strays=[name for name in domains
                              if (i := instance_id_from_domain(name)) is not None and i not in mine])
    for guest in on_host:
        if guest.busy or guest.status not in (lifecycle.RUNNING, lifecycle.OFFLINE):
            continue
        domain = domains.get(domain_name(guest.id))
        if domain is None:
            repairs.missing.append(guest)
        elif _followed(guest.status, guest.booted, guest.watchdog_enabled, guest.status_reason,
                       domain.state) is not None:
            repairs.follow.append((guest, domain.state))
    return repairs


def _followed(status: str, booted: bool, watchdog_enabled: bool, status_reason: str, state: str) -> str | None:
    """The status an instance takes from its domain's state (None: it agrees). A guest
    powered off from inside is `offline`; one left `offline` by a host outage is booted
    again when the customer wanted it running and its watchdog is on."""
    if state == RUNNING and status == lifecycle.OFFLINE:
        return lifecycle.RUNNING
    if state == SHUTOFF and status == lifecycle.RUNNING:
        return lifecycle.OFFLINE
    if (state == SHUTOFF and status == lifecycle.OFFLINE and booted and watchdog_enabled
            and status_reason == host_health.HOST_UNREACHABLE):
        return lifecycle.BOOTING
    return None


def reconcile(ctx: JobContext) -> None:
    """Compare one host's domains with its instances (again: a sweep saw them disagree, or
    the host came back) and fix what is safe:
    - a guest of ours that should not exist (its instance is gone, or lives elsewhere) is
      destroyed and undefined, and operators are told: it may hold a GPU someone else has;
    - an instance whose domain is missing is defined again (and started if it should run);
    - a status that disagrees with the domain's state follows the domain (`_followed`).
    Instances with work in flight are left to their jobs."""
    driver = ctx.driver(ctx.host)
    domains = {d.name: d for d in driver.list_domains()}
    with ctx.db.read() as s:
        host = s.get(Host, ctx.host)
        on_host = guest_states(s, [ctx.host])
    if host is None:
        return  # removed since the job was queued
    repairs = plan_repairs(domains, on_host)
    for name in repairs.strays:
        driver.destroy(name)
        driver.undefine(name)
        _tell_operators(ctx, host, "reconcile_stray_domain",
                        f"{name} ran on {host.name} without an instance there; destroyed and undefined")
    for guest in repairs.missing:
        name = domain_name(guest.id)
        driver.define(guests.domain_spec(ctx.db, guest.id))
        if guest.status == lifecycle.RUNNING:
            driver.start(name)
        _tell_operators(ctx, host, "reconcile_missing_domain", f"{name} was missing on {host.name}; defined again")
    for guest, state in repairs.follow:
        _follow_domain(ctx, guest, state)


def _follow_domain(ctx: JobContext, guest: GuestState, state: str) -> None:
    with ctx.db.write() as s:
        current = s.get(Instance, guest.id)
        if current is None or current.status != guest.status:
            return  # it moved on meanwhile
        status = _followed(current.status, current.booted, current.watchdog_enabled, current.status_reason, state)
        if status == lifecycle.RUNNING:
            current.status, current.status_reason = lifecycle.RUNNING, ""
        elif status == lifecycle.OFFLINE:
            current.status, current.status_reason = lifecycle.OFFLINE, "powered off from inside the guest"
            current.booted = False
        elif status == lifecycle.BOOTING:
            current.status, current.status_reason = lifecycle.BOOTING, ""
            event_id = events.create(s, action="lassie_reboot", account_id=current.account_id,
                                     entity_id=current.id, entity_label=current.label, username="watchdog",
                                     message="booted again after its host came back")
            store_jobs.enqueue(s, kind="boot", instance_id=current.id, host_id=current.host_id, event_id=event_id)


def _tell_operators(ctx: JobContext, host: Host, action: str, message: str) -> None:
    log.warning(message)
    with ctx.db.write() as s:
        events.create(s, action=action, account_id=None, entity_type="host", entity_id=host.id,
                      entity_label=host.name, message=message)


HANDLERS = {"host_sweep": host_sweep, "reconcile": reconcile}
