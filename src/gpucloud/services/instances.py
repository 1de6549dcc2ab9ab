"""Instances: create (place and claim synchronously), read, update, and the actions that
become jobs. Every state change, its claims, its job and its customer event are written in
one transaction, so a crash leaves either all of them or none."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gpucloud.catalog import load_catalog
from gpucloud.clock import utcnow
from gpucloud.config import Settings
from gpucloud.domain import lifecycle, validation
from gpucloud.domain.catalog import Plan, Region
from gpucloud.domain.lifecycle import TransitionError
from gpucloud.domain.passwords import sha512_crypt
from gpucloud.domain.placement import NoRoom, PlacementRequest
from gpucloud.errors import Conflict, GpucloudError, NotFound, ValidationErrors
from gpucloud.hypervisor import cloudinit
from gpucloud.services import addresses, gating, placing, sshkeys
from gpucloud.services.placing import NO_CAPACITY_PREFIX
from gpucloud.services.tokens import AccountRef
from gpucloud.store import events, usage
from gpucloud.store import instances as q
from gpucloud.store.db import Database
from gpucloud.store.jobs import enqueue
from gpucloud.store.tables import Instance

BUSY = "Linode busy."
LABEL_TAKEN = "Label must be unique among your Linodes"
UPDATABLE = ("label", "group", "tags", "alerts", "watchdog_enabled")
USER_DATA_FIELD = "metadata.user_data"
NO_WAY_IN = ("root_pass, authorized_keys or authorized_users is required when deploying from an image: "
             "without a root password or an SSH key nobody could log in to the guest")
DEFAULT_ALERTS = {"cpu": 90, "io": 10000, "network_in": 10, "network_out": 10, "transfer_quota": 80}


@dataclass(frozen=True)
class NewInstance:
    type: str | None  # None (left out of the request) is refused by validation
    region: str | None
    label: str | None = None
    image: str | None = None
    root_pass: str | None = None
    authorized_keys: tuple[str, ...] = ()
    authorized_users: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    group: str = ""
    booted: bool = True
    user_data: str | None = None  # metadata.user_data: base64, for the guest's cloud-init
    host_id: int | None = None  # operators only: pin a host
    gpu_addresses: tuple[str, ...] = ()  # operators only: pin GPUs on that host


# --- create -------------------------------------------------------------------------------


def create_instance(db: Database, settings: Settings, account_id: int, username: str, new: NewInstance, *,
                    bypass_flags: bool = False, actor: str | None = None, staff: bool | None = None) -> Instance:
    """Validate, place, claim, and queue the create job, all in one transaction.

    Placement runs under the region's placement lock; the claim compares and swaps the host's
    generation and lets the unique keys refuse a double claim. When another claim won anyway
    the whole attempt is redone, at most `claim_retries` times. `staff`: whether the account
    is staff's, when the caller knows (the API's token did); else it is read in the same
    transaction."""
    plan, keys = _validate_new(db, account_id, new, hide=not bypass_flags, staff=staff)
    region = load_catalog().region(new.region) if new.region is not None else None
    if new.region is None or region is None:
        raise RuntimeError("a new instance without a valid region passed validation")
    request = PlacementRequest.for_plan(plan, new.region, new.host_id, new.gpu_addresses)
    root_hash = sha512_crypt(new.root_pass) if new.root_pass else None
    last = None
    for _ in range(max(settings.claim_retries, 1)):
        try:
            with db.write() as s:
                account = AccountRef(account_id, staff) if staff is not None else gating.account_in(s, account_id)
                if plan.is_gpu:
                    placing.require_gpu_region(new.region)
                if plan.is_gpu and not bypass_flags:
                    gating.require_gpu_access(db, account, new.region)
                placing.lock_region(s, new.region)
                decision = placing.place_new(s, settings, request)
                if isinstance(decision, NoRoom):
                    raise placing.no_capacity(s, settings, request, decision)
                instance = _new_instance_row(s, account_id, username, new, plan, region, decision.host_id,
                                             root_hash, keys, actor)
                placing.claim(s, settings, new.region, instance.id, decision, staff=account.is_staff)
                event_id = events.create(s, action="linode_create", account_id=account_id, entity_id=instance.id,
                                         entity_label=instance.label, username=username,
                                         secondary_entity=_image_entity(new.image))
                enqueue(s, kind="create", instance_id=instance.id, host_id=decision.host_id, event_id=event_id,
                        max_attempts=settings.job_max_attempts)
                return instance
        except placing.LostRace:
            last = "another placement changed the host first"
        except IntegrityError as exc:
            if _label_conflict(exc):
                if new.label is not None:
                    raise ValidationErrors([("label", LABEL_TAKEN)]) from None
                last = "another create took the same default label first"  # the next try picks another
                continue
            last = "another instance claimed the same GPU, core or address first"
    raise placing.LostRaces(f"{NO_CAPACITY_PREFIX}: placement lost {settings.claim_retries} races in a row "
                            f"({last}); try again", field="type")


def _new_instance_row(s: Session, account_id: int, username: str, new: NewInstance, plan: Plan, region: Region,
                      host_id: int, root_hash: str | None, keys: tuple[str, ...], actor: str | None) -> Instance:
    """The instance row of a create and its usage interval, written; the returned object (id,
    MAC and addresses set) stays out of the session. The one place a new instance is built:
    what a create records goes here, every column set explicitly (`addresses.write_new` adds
    the addresses and writes it: one Core INSERT)."""
    label = new.label or validation.default_label(new.image, region.id, q.labels_of_account(s, account_id))
    now = utcnow()
    instance = Instance(account_id=account_id, label=label, group=new.group, region_id=region.id, type_id=plan.id,
                        image=new.image, status=lifecycle.PROVISIONING, status_reason="", host_id=host_id,
                        booted=new.booted, tags=list(new.tags), alerts=dict(DEFAULT_ALERTS), watchdog_enabled=True,
                        root_pass_hash=root_hash, authorized_keys=list(keys), created_by=actor or username,
                        user_data=new.user_data, created_at=now, updated_at=now)
    instance.id = addresses.write_new(s, instance)
    usage.opened(s, instance, now)  # billing: the instance accrues from now
    return instance


def _label_conflict(exc: IntegrityError) -> bool:
    text = str(exc.orig).lower()
    return "label" in text


def _image_entity(image: str | None) -> dict | None:
    if not image:
        return None
    return {"id": image, "label": image, "type": "image", "url": f"/v4/images/{image}"}


def _hidden(db: Database, account_id: int, staff: bool | None, plan: Plan) -> bool:
    """Whether this GPU plan is hidden from the account (staff: known to the caller, or read)."""
    if not plan.is_gpu:
        return False
    if staff is None:
        with db.read() as s:
            staff = gating.account_in(s, account_id).is_staff
    return gating.hidden_plan(db, AccountRef(account_id, staff), plan)


def _validate_new(db: Database, account_id: int, new: NewInstance, *, hide: bool = True,
                  staff: bool | None = None) -> tuple[Plan, tuple[str, ...]]:
    """Every field error at once, as Linode reports them (type first), and the plan and the
    public keys root is given (`authorized_keys`, then the keys of `authorized_users`). With
    `hide`, a GPU plan the account cannot see is unknown, exactly. A guest from an image needs
    a way in: a root password or at least one key."""
    catalog = load_catalog()
    errors: list[tuple[str | None, str]] = []
    plan = catalog.plan(new.type) if isinstance(new.type, str) else None
    if plan is not None and hide and _hidden(db, account_id, staff, plan):
        plan = None
    if plan is None:
        errors.append(("type", "A valid plan type by that ID was not found"))
    if not isinstance(new.region, str) or catalog.region(new.region) is None:
        errors.append(("region", "region is not valid"))
    if new.label is not None and (problem := validation.label_problem(new.label)):
        errors.append(("label", problem))
    if new.image is not None and catalog.image(new.image) is None:
        errors.append(("image", "image is not valid"))
    for i, tag in enumerate(new.tags):
        if problem := validation.tag_problem(tag):
            errors.append((f"tags[{i}]", problem))
    if problem := validation.group_problem(new.group):
        errors.append(("group", problem))
    if new.user_data is not None:
        errors += _user_data_problems(new.user_data)
    keys, access_errors = _way_in(db, account_id, new.root_pass, new.authorized_keys, new.authorized_users,
                                  required=bool(new.image))
    errors += access_errors
    if errors or plan is None:  # no plan is among the errors
        raise ValidationErrors(errors)
    return plan, keys


def _way_in(db: Database, account_id: int, root_pass: str | None, authorized_keys: tuple[str, ...],
            authorized_users: tuple[str, ...], *,
            required: bool) -> tuple[tuple[str, ...], list[tuple[str | None, str]]]:
    """The public keys root is given (`authorized_keys`, then the keys of `authorized_users`)
    and the field errors: a weak root password, a malformed key, an unknown user or one without
    keys, and (`required`: a guest from an image) neither a password nor a key."""
    errors: list[tuple[str | None, str]] = []
    if root_pass is not None and (problem := validation.root_pass_problem(root_pass)):
        errors.append(("root_pass", problem))
    for i, key in enumerate(authorized_keys):
        if problem := validation.ssh_key_problem(key):
            errors.append((f"authorized_keys[{i}]", problem))
    users_keys: list[str] = []
    if authorized_users:
        with db.read() as s:
            users_keys, user_errors = sshkeys.authorized_users_keys(s, account_id, authorized_users)
        errors += user_errors
    keys = tuple(dict.fromkeys([*(k.strip() for k in authorized_keys), *users_keys]))
    if required and not root_pass and not keys and not authorized_users:
        errors.append(("root_pass", NO_WAY_IN))
    return keys, errors


def _user_data_problems(text: str) -> list[tuple[str | None, str]]:
    """Base64 within Linode's size; a cloud-config must pass cloud-init's own schema check."""
    data, problem = validation.decode_user_data(text)
    if problem is None and data is not None and validation.is_cloud_config(data):
        problem = (f"user_data is not valid cloud-config: {complaint}"
                   if (complaint := cloudinit.cloud_config_problem(data)) else None)
    return [(USER_DATA_FIELD, problem)] if problem else []


# --- read and update ----------------------------------------------------------------------


def get_instance(db: Database, account_id: int, instance_id: int) -> Instance:
    with db.read() as s:
        instance = q.owned(s, account_id, instance_id)
        if instance is None:
            raise NotFound()
        return instance


def list_instances(db: Database, account_id: int) -> list[Instance]:
    with db.read() as s:
        return q.of_account(s, account_id)


def update_instance(db: Database, account_id: int, instance_id: int, changes: dict) -> Instance:
    """The mutable fields Linode allows (label, group, tags, alerts, watchdog_enabled)."""
    errors: list[tuple[str | None, str]] = []
    if "label" in changes and (problem := validation.label_problem(changes["label"])):
        errors.append(("label", problem))
    if "group" in changes and (problem := validation.group_problem(changes["group"])):
        errors.append(("group", problem))
    if "tags" in changes:
        if not isinstance(changes["tags"], list):
            errors.append(("tags", "Tags must be a list"))
        else:
            errors += [(f"tags[{i}]", p) for i, t in enumerate(changes["tags"]) if (p := validation.tag_problem(t))]
    if "alerts" in changes:
        alerts = changes["alerts"]
        if not isinstance(alerts, dict) or any(k not in DEFAULT_ALERTS or not isinstance(v, int) or isinstance(v, bool)
                                               or v < 0 for k, v in alerts.items()):
            errors.append(("alerts", f"alerts are whole numbers >= 0 for {', '.join(DEFAULT_ALERTS)}"))
    if "watchdog_enabled" in changes and not isinstance(changes["watchdog_enabled"], bool):
        errors.append(("watchdog_enabled", "watchdog_enabled must be true or false"))
    if errors:
        raise ValidationErrors(errors)
    with db.write() as s:
        instance = q.owned(s, account_id, instance_id)
        if instance is None:
            raise NotFound()
        if "label" in changes and q.label_taken(s, account_id, changes["label"], besides=instance.id):
            raise ValidationErrors([("label", LABEL_TAKEN)])
        for key in UPDATABLE:
            if key in changes:
                value = changes[key]
                if key == "alerts":
                    value = {**(instance.alerts or DEFAULT_ALERTS), **value}
                setattr(instance, key, value)
        s.flush()
        return instance


# --- actions ------------------------------------------------------------------------------


def boot_instance(db: Database, account_id: int, instance_id: int, username: str) -> None:
    _act(db, account_id, instance_id, username, "boot", booted=True)


def shutdown_instance(db: Database, account_id: int, instance_id: int, username: str) -> None:
    _act(db, account_id, instance_id, username, "shutdown", booted=False)


def reboot_instance(db: Database, account_id: int, instance_id: int, username: str) -> None:
    """Linode reboots an offline instance by booting it."""
    with db.read() as s:
        instance = q.owned(s, account_id, instance_id)
    name = "boot" if instance is not None and instance.status == lifecycle.OFFLINE else "reboot"
    _act(db, account_id, instance_id, username, name, booted=True)


def resize_instance(db: Database, settings: Settings, account_id: int, instance_id: int, type_id: str,
                    username: str) -> None:
    """Cold resize. Refused at once when the resize job could not place the new plan now (the
    same rules: `placing.place_resized`); the job shuts the guest down, swaps the claims in
    one transaction, defines and boots."""
    catalog = load_catalog()
    plan = catalog.plan(type_id) if isinstance(type_id, str) else None
    if plan is None or _hidden(db, account_id, None, plan):
        raise ValidationErrors([("type", "A valid plan type by that ID was not found")])
    with db.read() as s:
        instance = q.owned(s, account_id, instance_id)
        if instance is None:
            raise NotFound()
        current = catalog.plan(instance.type_id)
        if current is None:
            raise RuntimeError(f"instance {instance.id} has the unknown plan {instance.type_id!r}")
        if plan.id == instance.type_id:
            raise ValidationErrors([("type", "Linode is already running this service plan.")])
        if plan.disk_mib < current.disk_mib:
            raise ValidationErrors([("type", "The new plan's disk is smaller than this Linode's disk; "
                                             "shrinking disks is not supported")])
        if plan.is_gpu:
            placing.require_gpu_region(instance.region_id)
            gating.require_gpu_access(db, gating.account_in(s, account_id), instance.region_id)
        decision = placing.place_resized(s, settings, instance, plan)  # the rules the resize job applies
        if isinstance(decision, NoRoom):
            raise placing.no_capacity(s, settings, PlacementRequest.for_plan(plan, instance.region_id), decision)
    _act(db, account_id, instance_id, username, "resize", payload={"type": plan.id, "from_type": instance.type_id})


def delete_instance(db: Database, account_id: int, instance_id: int, username: str) -> None:
    """Accepted in any status: queued work of the instance is cancelled, then the delete job
    runs after whatever job is running now. Claims are freed only once the host confirms
    the guest is gone."""
    with db.write() as s:
        instance = q.owned(s, account_id, instance_id, lock=True)
        if instance is None:
            raise NotFound()
        delete_in(s, instance, username)


def delete_in(s: Session, instance: Instance, username: str) -> bool:
    """`delete_instance` in the caller's transaction (a policy's delete: a GPU trial's disks
    past their keep date); False when it is being deleted already."""
    if instance.status == lifecycle.DELETING:
        return False
    for _, event_id in q.cancel_queued_jobs(s, instance.id, "superseded by delete"):
        if event_id is not None:
            events.mark_failed(s, event_id, "Cancelled: the Linode is being deleted.")
    _start(s, instance, lifecycle.ACTIONS["delete"], username)
    return True


@dataclass(frozen=True)
class Rebuild:
    """A rebuild's request: a fresh disk from `image`, with a new way in (and user data: an
    instance rebuilt without it has none, as on Linode)."""

    image: str | None
    root_pass: str | None = None
    authorized_keys: tuple[str, ...] = ()
    authorized_users: tuple[str, ...] = ()
    booted: bool = True
    user_data: str | None = None


def rebuild_instance(db: Database, account_id: int, instance_id: int, rebuild: Rebuild, username: str) -> Instance:
    """Wipe the disk and write a fresh one from the image on the same host (same claims: the
    same GPUs, cores and addresses), with the new root password, keys and user data in the
    seed. The instance is `rebuilding` at once; the job boots it unless `booted` is false."""
    catalog = load_catalog()
    errors: list[tuple[str | None, str]] = []
    if not isinstance(rebuild.image, str) or catalog.image(rebuild.image) is None:
        errors.append(("image", "image is not valid" if rebuild.image else "image is required"))
    keys, access_errors = _way_in(db, account_id, rebuild.root_pass, rebuild.authorized_keys,
                                  rebuild.authorized_users, required=True)
    errors += access_errors
    if rebuild.user_data is not None:
        errors += _user_data_problems(rebuild.user_data)
    if errors:
        raise ValidationErrors(errors)
    root_hash = sha512_crypt(rebuild.root_pass) if rebuild.root_pass else None

    def change(instance: Instance) -> None:
        instance.image = rebuild.image
        instance.root_pass_hash = root_hash
        instance.authorized_keys = list(keys)
        instance.user_data = rebuild.user_data

    return _act(db, account_id, instance_id, username, "rebuild", booted=rebuild.booted, change=change,
                secondary_entity=_image_entity(rebuild.image))


def rescue_instance(db: Database, account_id: int, instance_id: int, username: str) -> None:
    """Reboot into the rescue system, the instance's disk attached beside it; the next boot or
    reboot comes back to the instance's own disk."""
    _act(db, account_id, instance_id, username, "rescue", booted=True)


def reset_root_password(db: Database, account_id: int, instance_id: int, root_pass: str | None,
                        username: str) -> None:
    """The new password's hash goes into the instance's cloud-init seed (a job rewrites it on the
    host); the guest takes it at its next boot. Only while the instance is offline, as on Linode."""
    if not isinstance(root_pass, str) or not root_pass:
        raise ValidationErrors([("root_pass", "root_pass is required")])
    if problem := validation.root_pass_problem(root_pass):
        raise ValidationErrors([("root_pass", problem)])
    root_hash = sha512_crypt(root_pass)

    def change(instance: Instance) -> None:
        instance.root_pass_hash = root_hash

    _act(db, account_id, instance_id, username, "password", change=change)


def _act(db: Database, account_id: int, instance_id: int, username: str, name: str, *,
         booted: bool | None = None, payload: dict | None = None, change: Callable[[Instance], None] | None = None,
         secondary_entity: dict | None = None) -> Instance:
    """Start action `name` if the instance is idle and its status allows it: `change` applies
    the request to the row, in the transaction that enqueues the job."""
    with db.write() as s:
        instance = q.owned(s, account_id, instance_id, lock=True)
        if instance is None:
            raise NotFound()
        if q.has_unfinished_job(s, instance.id):
            raise Conflict(BUSY)
        if name == "boot":
            plan = load_catalog().plan(instance.type_id)
            if plan is None:
                raise RuntimeError(f"instance {instance.id} has the unknown plan {instance.type_id!r}")
            if plan.is_gpu:
                gating.require_gpu_access(db, gating.account_in(s, account_id), instance.region_id)
        try:
            action = lifecycle.action_for(name, instance.status)
        except TransitionError as exc:
            verb = lifecycle.ACTIONS[name].verb or name
            raise GpucloudError(f"Cannot {verb} this Linode while it is {instance.status}.") from exc
        if booted is not None:
            instance.booted = booted
        if change is not None:
            change(instance)
        _start(s, instance, action, username, payload, secondary_entity)
        s.flush()
        return instance


def stop_in(s: Session, instance: Instance, username: str, message: str) -> bool:
    """Shut the instance down for a policy (a GPU trial's end), in the caller's transaction,
    with an event whose message says why. False when it is busy or not running (then the
    caller tries again later)."""
    if q.has_unfinished_job(s, instance.id):
        return False
    try:
        action = lifecycle.action_for("shutdown", instance.status)
    except TransitionError:
        return False
    instance.booted = False
    _start(s, instance, action, username, message=message)
    return True


def _start(s: Session, instance: Instance, action: lifecycle.Action, username: str,
           payload: dict | None = None, secondary_entity: dict | None = None, message: str = "") -> None:
    lifecycle.check_transition(instance.status, action.enters)
    instance.status = action.enters
    instance.status_reason = ""
    event_id = events.create(s, action=action.event_action, account_id=instance.account_id, entity_id=instance.id,
                             entity_label=instance.label, username=username, secondary_entity=secondary_entity,
                             message=message)
    enqueue(s, kind=action.job_kind, instance_id=instance.id, host_id=instance.host_id, event_id=event_id,
            payload=payload or {})

