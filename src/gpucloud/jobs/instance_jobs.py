"""Handlers of the instance lifecycle jobs: create, boot, shutdown, reboot, resize, rebuild,
rescue, password, delete.

Each handler drives the host's hypervisor and records where the instance stands through
`services.provisioning`; it may run again after a crash at any point, so each step is
idempotent: a domain is (re)defined from the claims, starting a running domain is a no-op,
a status already reached is left alone. The job's event is closed by the queue when the
handler returns (finished) or gives up (failed); handlers move the instance's status and the
event's percentage in between, a status change in the same transaction as the step that
announces it, and the status the instance settles in with the job's success. An instance
being deleted belongs to its delete job: another job that meets it stops there, in one line
of log. A handler's first step (`first_step`) is written by the claim, in its transaction.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from functools import partial

from sqlalchemy.orm import Session

from gpucloud.domain import lifecycle
from gpucloud.domain.guest import domain_name
from gpucloud.jobs.context import JobContext
from gpucloud.jobs.queue import PermanentJobError, RetryableJobError, first_step
from gpucloud.services import parking, provisioning
from gpucloud.services.provisioning import InstanceDeleted, enter
from gpucloud.store.instances import InstanceRow

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 30.0


def instance_job(handler: Callable[[JobContext], None]) -> Callable[[JobContext], None]:
    """A job about one instance. Meeting the instance being deleted ends it quietly; on the
    attempt that will not be retried, the instance is left `failed` with the reason, so the
    customer sees why instead of a status stuck in the middle."""

    @functools.wraps(handler)
    def run(ctx: JobContext) -> None:
        try:
            handler(ctx)
        except InstanceDeleted as gone:
            _deleted(ctx, gone)
        except Exception as exc:
            if not getattr(exc, "retryable", True) or ctx.attempt >= ctx.max_attempts:
                provisioning.mark_failed(ctx.db, ctx.instance, getattr(exc, "reason", None) or "the operation failed")
            raise

    return run


def _deleted(ctx: JobContext, gone: InstanceDeleted) -> None:
    log.info("job %d (%s): instance %d is being deleted; the delete job takes over", ctx.id, ctx.kind,
             gone.instance_id)


def _settle(ctx: JobContext, status: str) -> None:
    """The status the instance rests in, written with the job's success (one transaction)."""

    def write(s: Session) -> None:
        try:
            enter(s, ctx.instance, status)
        except InstanceDeleted as gone:
            _deleted(ctx, gone)

    ctx.on_success(write)


def _boot(ctx: JobContext, name: str, percent: int, host_id: int | None = None) -> None:
    ctx.progress(percent, "Booting", then=partial(enter, instance_id=ctx.instance, status=lifecycle.BOOTING))
    ctx.driver(host_id).start(name)
    _settle(ctx, lifecycle.RUNNING)


@first_step(10, "Preparing the disk and defining the instance")
@instance_job
def create(ctx: JobContext) -> None:
    """Define the domain from the claims, then boot it unless the customer asked for it off."""
    instance, spec = provisioning.wanted_with_spec(ctx.db, ctx.instance)
    ctx.driver().define(spec)
    if instance.booted:
        _boot(ctx, spec.name, 50)
    else:
        _settle(ctx, lifecycle.OFFLINE)


@instance_job
def boot(ctx: JobContext) -> None:
    parking.unpark(ctx.db, ctx.settings, ctx.instance)  # a parked instance claims on its host again
    _, spec = provisioning.wanted_with_spec(ctx.db, ctx.instance)
    ctx.driver().define(spec)  # picks up anything that changed since the last boot
    _boot(ctx, spec.name, 30)


@first_step(20, "Shutting down")
@instance_job
def shutdown(ctx: JobContext) -> None:
    instance = provisioning.wanted(ctx.db, ctx.instance)
    ctx.driver().shutdown(domain_name(instance.id), SHUTDOWN_TIMEOUT_S)
    _settle(ctx, lifecycle.OFFLINE)


@first_step(20, "Shutting down")
@instance_job
def reboot(ctx: JobContext) -> None:
    """Off, then on from the instance's own definition (which also ends rescue mode)."""
    _, spec = provisioning.wanted_with_spec(ctx.db, ctx.instance)
    ctx.driver().shutdown(spec.name, SHUTDOWN_TIMEOUT_S)
    ctx.progress(50, "Booting")
    ctx.driver().define(spec)
    ctx.driver().start(spec.name)
    _settle(ctx, lifecycle.RUNNING)


@first_step(10, "Shutting down")
@instance_job
def rebuild(ctx: JobContext) -> None:
    """Stop the guest, wipe its disk and write a fresh one from the image on the same host (the
    same claims: the same GPUs, cores and addresses), the new root password and keys in its
    seed; then boot it unless the customer asked for it off."""
    instance, spec = provisioning.wanted_with_spec(ctx.db, ctx.instance)
    ctx.driver().shutdown(spec.name, SHUTDOWN_TIMEOUT_S)
    ctx.progress(30, f"Writing a fresh disk from {instance.image}")
    ctx.driver().reimage(spec)
    if instance.booted:
        _boot(ctx, spec.name, 80)
    else:
        ctx.progress(90, "Rebuilt")
        _settle(ctx, lifecycle.OFFLINE)


@first_step(20, "Shutting down")
@instance_job
def rescue(ctx: JobContext) -> None:
    """Reboot from the rescue system, the instance's disk attached beside it."""
    _, spec = provisioning.wanted_with_spec(ctx.db, ctx.instance)
    ctx.driver().shutdown(spec.name, SHUTDOWN_TIMEOUT_S)
    ctx.progress(50, "Booting the rescue system")
    ctx.driver().define(dataclasses.replace(spec, rescue=True))
    ctx.driver().start(spec.name)
    _settle(ctx, lifecycle.RUNNING)


@first_step(50, "Writing the new root password")
@instance_job
def password(ctx: JobContext) -> None:
    """Rewrite the stopped instance's seed with the new root password's hash: the guest takes it
    at its next boot."""
    _, spec = provisioning.wanted_with_spec(ctx.db, ctx.instance)
    ctx.driver().define(spec)
    _settle(ctx, lifecycle.OFFLINE)


@instance_job
def resize(ctx: JobContext) -> None:
    """Cold resize: stop the guest, then in one transaction give back the old claims and take
    new ones (by the rules the API's pre-check applied), then define and boot."""
    instance = provisioning.wanted(ctx.db, ctx.instance)
    target = ctx.payload["type"]
    name = domain_name(instance.id)
    old_host = instance.host_id
    if instance.type_id != target:
        ctx.progress(10, "Shutting down")
        ctx.driver(old_host).shutdown(name, SHUTDOWN_TIMEOUT_S)
        ctx.progress(30, "Finding room for the new plan")
        moved = provisioning.resize_claims(ctx.db, ctx.settings, instance.id, target)
        if moved is None:
            _restore(ctx, instance, name)
            raise PermanentJobError("No capacity for the new plan in this region right now; the Linode kept "
                                    "its current plan.")
        if moved != old_host:
            ctx.driver(old_host).destroy(name)
            ctx.driver(old_host).undefine(name)
    resized, spec = provisioning.wanted_with_spec(ctx.db, instance.id)
    ctx.progress(60, "Defining the resized instance")
    ctx.driver(resized.host_id).define(spec)
    if instance.booted:
        _boot(ctx, name, 70, resized.host_id)
    else:
        _settle(ctx, lifecycle.OFFLINE)


def _restore(ctx: JobContext, instance: InstanceRow, name: str) -> None:
    """After a resize that found no room: the guest comes back as it was."""
    if instance.booted:
        ctx.driver(instance.host_id).start(name)
    provisioning.set_status(ctx.db, instance.id, lifecycle.settled_status(instance.booted))


def delete(ctx: JobContext) -> None:
    """Destroy and undefine the domain; only once the host confirms it is gone are the claims
    freed and the instance removed, so no GPU reaches a second customer while a guest may run."""
    instance = provisioning.instance(ctx.db, ctx.instance)
    if instance is None:
        return
    name = domain_name(instance.id)
    if instance.host_id is not None:
        driver = ctx.driver(instance.host_id)
        ctx.progress(20, "Stopping the instance")
        driver.destroy(name)
        ctx.progress(50, "Removing its disk")
        driver.undefine(name)
        if any(d.name == name for d in driver.list_domains()):
            raise RetryableJobError("the host still lists the domain after undefining it")
    ctx.on_success(partial(provisioning.remove, instance_id=instance.id))


HANDLERS: dict[str, Callable[[JobContext], None]] = {
    "create": create,
    "boot": boot,
    "shutdown": shutdown,
    "reboot": reboot,
    "resize": resize,
    "rebuild": rebuild,
    "rescue": rescue,
    "password": password,
    "delete": delete,
}
