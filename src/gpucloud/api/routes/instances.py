"""Linode instances: list, create, view, update, delete, the power and resize actions, and the
read-only views linode_api4 asks for (`ips`, `configs`, `disks`).

Create answers 200 with the whole instance (status `provisioning`); actions and DELETE
answer `200 {}` (linode_api4 tests `"error" in response`, so never 204). Another account's
instance is 404, exactly like one that does not exist.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Request

from gpucloud.api import bodies, guest_schemas, unoffered, views
from gpucloud.api.auth import scope
from gpucloud.api.filters import Filterable
from gpucloud.api.listing import ListRequest, ObjectId, envelope, list_request
from gpucloud.api.routing import LinodeRoute
from gpucloud.errors import GpucloudError, NotFound, ValidationErrors
from gpucloud.services import addresses, guest_stats
from gpucloud.services import instances as service
from gpucloud.services.tokens import Identity

router = APIRouter(tags=["linode"], route_class=LinodeRoute)

read = scope("linodes", "read_only")
write = scope("linodes", "read_write")

INSTANCE_FIELDS = Filterable.of("group", "id", "image", "interface_generation", "ipv4", "label",
                                "placement_group.label", "placement_group.placement_group_type", "region", "tags",
                                "type", "status")
PER_INSTANCE_FIELDS = Filterable.of("id", "label")


def _shape(request: Request, inst) -> dict:
    catalog = request.app.state.catalog
    return views.instance(inst, catalog.plan(inst.type_id), catalog.region(inst.region_id))


def _owned(request: Request, who: Identity, instance_id: int):
    return service.get_instance(request.app.state.db, who.account_id, instance_id)


# --- the collection and its members ----------------------------------------------------------------


@router.get("/linode/instances", summary="List instances")
def list_instances(request: Request, who: Identity = Depends(read), req: ListRequest = Depends(list_request)) -> dict:
    query = req.query(INSTANCE_FIELDS)  # a bad filter fails before any database work
    rows = service.list_instances(request.app.state.db, who.account_id)
    return envelope(query.apply(_shape(request, inst) for inst in rows), req)


@router.post("/linode/instances", summary="Create an instance",
             description="Places the instance and claims its GPUs, cores and memory at once: no capacity is an "
                         "immediate 400. Answers the instance in status `provisioning`.")
def create_instance(body: bodies.InstanceCreate, request: Request, who: Identity = Depends(write)) -> dict:
    unoffered.refuse(body, unoffered.CREATE_FIELDS)
    new = service.NewInstance(
        type=body.type, region=body.region, label=body.label, image=body.image, root_pass=body.root_pass,
        authorized_keys=tuple(body.authorized_keys or ()), authorized_users=tuple(body.authorized_users or ()),
        tags=tuple(body.tags or ()), group=body.group or "", booted=True if body.booted is None else body.booted,
        user_data=body.metadata.user_data if body.metadata else None,
    )
    inst = service.create_instance(request.app.state.db, request.app.state.settings, who.account_id, who.username,
                                   new, staff=who.account.is_staff)
    return _shape(request, inst)


@router.get("/linode/instances/{instance_id}", summary="View an instance")
def get_instance(instance_id: ObjectId, request: Request, who: Identity = Depends(read)) -> dict:
    return _shape(request, _owned(request, who, instance_id))


@router.put("/linode/instances/{instance_id}", summary="Update an instance",
            description="Changes label, group, tags, alerts and watchdog_enabled. `backups` and "
                        "`maintenance_policy` may be sent as they are shown (linode_api4 sends every mutable "
                        "field); asking for backups or another policy is a 400 naming the field.")
def update_instance(instance_id: ObjectId, body: bodies.InstanceUpdate, request: Request,
                    who: Identity = Depends(write)) -> dict:
    unoffered.refuse(body, unoffered.UPDATE_FIELDS)
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if k not in unoffered.UPDATE_FIELDS}
    if "alerts" in changes:
        changes["alerts"] = {k: v for k, v in (changes["alerts"] or {}).items() if v is not None}
    changes = {k: v for k, v in changes.items() if v is not None}
    inst = service.update_instance(request.app.state.db, who.account_id, instance_id, changes)
    return _shape(request, inst)


@router.delete("/linode/instances/{instance_id}", summary="Delete an instance")
def delete_instance(instance_id: ObjectId, request: Request, who: Identity = Depends(write)) -> dict:
    service.delete_instance(request.app.state.db, who.account_id, instance_id, who.username)
    return {}


# --- actions -----------------------------------------------------------------------------------------


@router.post("/linode/instances/{instance_id}/boot", summary="Boot an instance")
def boot(instance_id: ObjectId, request: Request, who: Identity = Depends(write),
         body: bodies.ConfigRef | None = Body(None)) -> dict:
    _check_config(request, who, instance_id, body)
    service.boot_instance(request.app.state.db, who.account_id, instance_id, who.username)
    return {}


@router.post("/linode/instances/{instance_id}/reboot", summary="Reboot an instance")
def reboot(instance_id: ObjectId, request: Request, who: Identity = Depends(write),
           body: bodies.ConfigRef | None = Body(None)) -> dict:
    _check_config(request, who, instance_id, body)
    service.reboot_instance(request.app.state.db, who.account_id, instance_id, who.username)
    return {}


@router.post("/linode/instances/{instance_id}/shutdown", summary="Shut an instance down")
def shutdown(instance_id: ObjectId, request: Request, who: Identity = Depends(write),
             _body: bodies.NoFields | None = Body(None)) -> dict:
    service.shutdown_instance(request.app.state.db, who.account_id, instance_id, who.username)
    return {}


@router.post("/linode/instances/{instance_id}/resize", summary="Resize an instance",
             description="Moves the instance to another type, cold, its disk growing with the type: "
                         "`allow_auto_disk_resize: false` and `migration_type: warm` are refused (400).")
def resize(instance_id: ObjectId, body: bodies.Resize, request: Request, who: Identity = Depends(write)) -> dict:
    unoffered.refuse(body, unoffered.RESIZE_FIELDS)
    service.resize_instance(request.app.state.db, request.app.state.settings, who.account_id, instance_id, body.type,
                            who.username)
    return {}


@router.post("/linode/instances/{instance_id}/rebuild", summary="Rebuild an instance",
             description="Wipes the disk and writes a fresh one from `image` on the same host: the same GPUs, "
                         "cores and addresses. Answers the instance, status `rebuilding`. `metadata.user_data` "
                         "replaces the instance's user data (left out: it has none). `disk_encryption` (other "
                         "than `disabled`), StackScripts and `type` (resize on its own) are refused (400).")
def rebuild(instance_id: ObjectId, body: bodies.Rebuild, request: Request, who: Identity = Depends(write)) -> dict:
    unoffered.refuse(body, unoffered.REBUILD_FIELDS)
    inst = service.rebuild_instance(request.app.state.db, who.account_id, instance_id, service.Rebuild(
        image=body.image, root_pass=body.root_pass, authorized_keys=tuple(body.authorized_keys or ()),
        authorized_users=tuple(body.authorized_users or ()), booted=True if body.booted is None else body.booted,
        user_data=body.metadata.user_data if body.metadata else None,
    ), who.username)
    return _shape(request, inst)


@router.post("/linode/instances/{instance_id}/rescue", summary="Boot an instance into rescue mode",
             description="Reboots from the rescue system with the instance's disk attached; the next boot or "
                         "reboot comes back to the instance's own disk. `devices` may name only the instance's own "
                         "disk (its id is the instance's); volumes are not offered.")
def rescue(instance_id: ObjectId, request: Request, who: Identity = Depends(write),
           body: bodies.Rescue | None = Body(None)) -> dict:
    inst = _owned(request, who, instance_id)
    refused: list[tuple[str | None, str]] = []
    for slot, device in ((body.devices.model_dump(exclude_none=True) if body and body.devices else {}).items()):
        if device.get("volume_id") is not None:
            refused.append((f"devices.{slot}.volume_id", "Volumes are not offered here"))
        if device.get("disk_id") not in (None, inst.id):
            refused.append((f"devices.{slot}.disk_id", "Disk not found"))
    if refused:
        raise ValidationErrors(refused)
    service.rescue_instance(request.app.state.db, who.account_id, instance_id, who.username)
    return {}


@router.post("/linode/instances/{instance_id}/password", summary="Reset an instance's root password",
             description="The instance must be offline. The new password reaches the guest through its "
                         "cloud-init seed at the next boot.")
def reset_password(instance_id: ObjectId, body: bodies.RootPassword, request: Request,
                   who: Identity = Depends(write)) -> dict:
    service.reset_root_password(request.app.state.db, who.account_id, instance_id, body.root_pass, who.username)
    return {}


def _check_config(request: Request, who: Identity, instance_id: int, body: bodies.ConfigRef | None) -> None:
    """Each instance has one configuration profile, whose id is the instance's."""
    if body is not None and body.config_id is not None and body.config_id != instance_id:
        _owned(request, who, instance_id)  # someone else's instance stays a 404
        raise GpucloudError("Config not found", field="config_id")


# --- read-only views linode_api4 loads ------------------------------------------------------------------


@router.get("/linode/instances/{instance_id}/ips", summary="List an instance's addresses")
def ips(instance_id: ObjectId, request: Request, who: Identity = Depends(read)) -> dict:
    inst = _owned(request, who, instance_id)
    return views.instance_ips(inst, addresses.network_of(request.app.state.db, inst))


@router.get("/linode/instances/{instance_id}/stats", summary="An instance's statistics, last 24 hours",
            response_model=guest_schemas.InstanceStats,
            description="CPU, disk and network series from the hypervisor's counters (a reading every 5 minutes, "
                        "taken during host checks). The interface's traffic is reported as public IPv4.")
def stats(instance_id: ObjectId, request: Request, who: Identity = Depends(read)) -> dict:
    return guest_stats.stats(request.app.state.db, who.account_id, instance_id)


@router.get("/linode/instances/{instance_id}/transfer", summary="An instance's network transfer this month",
            response_model=guest_schemas.InstanceTransfer)
def transfer(instance_id: ObjectId, request: Request, who: Identity = Depends(read)) -> dict:
    return guest_stats.transfer(request.app.state.db, who.account_id, instance_id)


@router.get("/linode/instances/{instance_id}/transfer/{year}/{month}",
            summary="An instance's network transfer in one month", response_model=guest_schemas.TransferMonth)
def transfer_month(instance_id: ObjectId, year: Annotated[int, Path(ge=2000, le=9999)],
                   month: Annotated[int, Path(ge=1, le=12)], request: Request, who: Identity = Depends(read)) -> dict:
    return guest_stats.transfer_month(request.app.state.db, who.account_id, instance_id, year, month)


@router.get("/linode/instances/{instance_id}/configs", summary="List an instance's configuration profiles")
def configs(instance_id: ObjectId, request: Request, who: Identity = Depends(read),
            req: ListRequest = Depends(list_request)) -> dict:
    inst = _owned(request, who, instance_id)
    plan = request.app.state.catalog.plan(inst.type_id)
    return envelope(req.query(PER_INSTANCE_FIELDS).apply([views.instance_config(inst, plan)]), req)


@router.get("/linode/instances/{instance_id}/configs/{config_id}", summary="View a configuration profile")
def config(instance_id: ObjectId, config_id: ObjectId, request: Request, who: Identity = Depends(read)) -> dict:
    inst = _owned(request, who, instance_id)
    if config_id != inst.id:
        raise NotFound()
    return views.instance_config(inst, request.app.state.catalog.plan(inst.type_id))


@router.get("/linode/instances/{instance_id}/disks", summary="List an instance's disks")
def disks(instance_id: ObjectId, request: Request, who: Identity = Depends(read),
          req: ListRequest = Depends(list_request)) -> dict:
    inst = _owned(request, who, instance_id)
    plan = request.app.state.catalog.plan(inst.type_id)
    return envelope(req.query(PER_INSTANCE_FIELDS).apply([views.instance_disk(inst, plan)]), req)


@router.get("/linode/instances/{instance_id}/disks/{disk_id}", summary="View a disk")
def disk(instance_id: ObjectId, disk_id: ObjectId, request: Request, who: Identity = Depends(read)) -> dict:
    inst = _owned(request, who, instance_id)
    if disk_id != inst.id:
        raise NotFound()
    return views.instance_disk(inst, request.app.state.catalog.plan(inst.type_id))
