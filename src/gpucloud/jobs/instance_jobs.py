"""Handlers of the instance lifecycle jobs: create, boot, shutdown, reboot, resize, delete.

Each handler may run again after a crash at any point, so each step is idempotent: a
domain is (re)defined from the claims, starting a running domain is a no-op, a status
already reached is left alone. The job's event is closed by the queue when the handler
returns (finished) or gives up (failed); handlers move the instance's status and the
event's percentage in between.
"""

from __future__ import annotations

from collections.abc import Callable

from gpucloud.catalog import load_catalog
from gpucloud.domain import lifecycle
from gpucloud.domain.guest import domain_name
from gpucloud.domain.placement import NoRoom, PlacementRequest, place
from gpucloud.jobs.queue import PermanentJobError, RetryableJobError
from gpucloud.services import guests
from gpucloud.services.placement_config import placement_config
from gpucloud.store import claims as claim_store
from gpucloud.store.tables import Instance

SHUTDOWN_TIMEOUT_S = 30.0


def _instance(ctx) -> Instance | None:
    with ctx.db.read() as s:
        return s.get(Instance, ctx.instance_id)


def _still_wanted(ctx) -> Instance | None:
    """The job's instance, unless it is gone or being deleted (the delete job cleans up)."""
    instance = _instance(ctx)
    return None if instance is None or instance.status == lifecycle.DELETING else instance


def set_status(db, instance_id: int, status: str, reason: str = "") -> Instance | None:
    """Move an instance along its state machine; already there is fine (a retried step)."""
    with db.write() as s:
        instance = s.get(Instance, instance_id)
        if instance is None:
            return None
        lifecycle.check_transition(instance.status, status)
        instance.status, instance.status_reason = status, reason
        return instance


def _failing(handler: Callable) -> Callable:
    """On the attempt that will not be retried, leave the instance `failed` with the reason,
    so the customer sees why instead of a status stuck in the middle."""

    def run(ctx) -> None:
        try:
            handler(ctx)
        except Exception as exc:
            retryable = getattr(exc, "retryable", True)
            if not retryable or ctx.attempt >= ctx.max_attempts:
                reason = getattr(exc, "reason", None) or "the operation failed"
                with ctx.db.write() as s:
                    instance = s.get(Instance, ctx.instance_id)
                    if instance is not None and instance.status != lifecycle.DELETING:
                        instance.status, instance.status_reason = lifecycle.FAILED, reason
            raise

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


def _boot(ctx, name: str, start_percent: int) -> None:
    set_status(ctx.db, ctx.instance_id, lifecycle.BOOTING)
    ctx.progress(start_percent, "Booting")
    ctx.driver().start(name)
    set_status(ctx.db, ctx.instance_id, lifecycle.RUNNING)


@_failing
def create(ctx) -> None:
    """Define the domain from the claims, then boot it unless the customer asked for it off."""
    instance = _still_wanted(ctx)
    if instance is None:
        return
    spec = guests.domain_spec(ctx.db, instance.id)
    ctx.progress(10, "Preparing the disk and defining the instance")
    ctx.driver().define(spec)
    ctx.progress(40)
    if instance.booted:
        _boot(ctx, spec.name, 50)
    else:
        set_status(ctx.db, instance.id, lifecycle.OFFLINE)


@_failing
def boot(ctx) -> None:
    instance = _still_wanted(ctx)
    if instance is None:
        return
    spec = guests.domain_spec(ctx.db, instance.id)
    ctx.driver().define(spec)  # picks up anything that changed since the last boot
    _boot(ctx, spec.name, 30)


@_failing
def shutdown(ctx) -> None:
    instance = _still_wanted(ctx)
    if instance is None:
        return
    ctx.progress(20, "Shutting down")
    ctx.driver().shutdown(domain_name(instance.id), SHUTDOWN_TIMEOUT_S)
    set_status(ctx.db, instance.id, lifecycle.OFFLINE)


@_failing
def reboot(ctx) -> None:
    instance = _still_wanted(ctx)
    if instance is None:
        return
    name = domain_name(instance.id)
    ctx.progress(20, "Shutting down")
    ctx.driver().shutdown(name, SHUTDOWN_TIMEOUT_S)
    ctx.progress(50, "Booting")
    ctx.driver().start(name)
    set_status(ctx.db, instance.id, lifecycle.RUNNING)


@_failing
def resize(ctx) -> None:
    """Cold resize: stop the guest, then in one transaction give back the old claims and take
    new ones (the same host when it has room, else another), then define and boot."""
    instance = _still_wanted(ctx)
    if instance is None:
        return
    target = ctx.payload["type"]
    name = domain_name(instance.id)
    old_host = instance.host_id
    if instance.type_id != target:
        ctx.progress(10, "Shutting down")
        ctx.driver(old_host).shutdown(name, SHUTDOWN_TIMEOUT_S)
        ctx.progress(30, "Finding room for the new plan")
        moved = _reclaim(ctx, instance, target)
        if moved is None:
            _restore(ctx, instance, name)
            raise PermanentJobError("No capacity for the new plan in this region right now; the Linode kept "
                                    "its current plan.")
        if moved != old_host:
            ctx.driver(old_host).destroy(name)
            ctx.driver(old_host).undefine(name)
    resized = _instance(ctx)
    if resized is None:
        raise RuntimeError(f"instance {instance.id} vanished while it was being resized")
    host_id = resized.host_id
    spec = guests.domain_spec(ctx.db, instance.id)
    ctx.progress(60, "Defining the resized instance")
    ctx.driver(host_id).define(spec)
    if instance.booted:
        set_status(ctx.db, instance.id, lifecycle.BOOTING)
        ctx.progress(70, "Booting")
        ctx.driver(host_id).start(name)
        set_status(ctx.db, instance.id, lifecycle.RUNNING)
    else:
        set_status(ctx.db, instance.id, lifecycle.OFFLINE)


def _reclaim(ctx, instance: Instance, target: str) -> int | None:
    """Swap the instance's claims for ones that fit `target`; the new host id, or None (and
    nothing changed) when no host has room. Same host first: a move costs the customer the
    copy of their disk."""
    plan = load_catalog().plan(target)
    if plan is None:
        raise RuntimeError(f"resize to unknown plan {target!r}")
    config = placement_config(ctx.settings)
    for _ in range(max(ctx.settings.claim_retries, 1)):
        with ctx.db.write() as s:
            current = s.get(Instance, instance.id)
            claim_store.serialize_placements(s, current.region_id)
            states = claim_store.load_host_states(s, ctx.settings, region=current.region_id,
                                                  gpu_model=plan.gpu_model if plan.is_gpu else None,
                                                  ignore_instance=current.id)
            if current.host_id is not None and not any(h.id == current.host_id for h in states):
                states += claim_store.load_host_states(s, ctx.settings, host_ids=[current.host_id],
                                                       ignore_instance=current.id)
            decision = place(PlacementRequest.for_plan(plan, current.region_id, current.host_id), states, config)
            if isinstance(decision, NoRoom) and not _libvirt_host(s, current.host_id):
                decision = place(PlacementRequest.for_plan(plan, current.region_id), states, config)
            if isinstance(decision, NoRoom):
                return None
            if not claim_store.bump_generation(s, decision.host_id, decision.generation):
                continue
            from gpucloud.services.instances import write_claims

            claim_store.release_claims(s, current.id)
            s.flush()
            write_claims(s, current.id, decision)
            current.type_id, current.host_id = plan.id, decision.host_id
            return decision.host_id
    raise RetryableJobError("placement kept losing races; will try again")


def _libvirt_host(s, host_id: int | None) -> bool:
    """A real host keeps the disk locally: moving it to another host is not supported yet."""
    from gpucloud.store.tables import Host

    host = s.get(Host, host_id) if host_id is not None else None
    return host is not None and host.driver == "libvirt"


def _restore(ctx, instance: Instance, name: str) -> None:
    """After a resize that found no room: the guest comes back as it was."""
    if instance.booted:
        ctx.driver(instance.host_id).start(name)
    set_status(ctx.db, instance.id, lifecycle.settled_status(instance.booted))


def delete(ctx) -> None:
    """Destroy and undefine the domain; only once the host confirms it is gone are the claims
    freed and the instance removed, so no GPU reaches a second customer while a guest may run."""
    instance = _instance(ctx)
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
    ctx.progress(90)
    remove_instance(ctx.db, instance.id)


def remove_instance(db, instance_id: int) -> None:
    with db.write() as s:
        instance = s.get(Instance, instance_id)
        if instance is None:
            return
        claim_store.release_claims(s, instance_id)
        s.delete(instance)


HANDLERS = {
    "create": create,
    "boot": boot,
    "shutdown": shutdown,
    "reboot": reboot,
    "resize": resize,
    "delete": delete,
}
