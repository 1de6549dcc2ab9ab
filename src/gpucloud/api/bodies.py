"""Request bodies, as pydantic models: they validate types, refuse unknown fields, and are what
/v4/openapi.json documents.

Create and PUT declare every field Linode's API lists for them, because the clients send them
(linode_api4's `save()` PUTs all mutable fields; create passes through whatever keyword
arguments it gets). Fields for features we do not have (backups, StackScripts, VPC
interfaces, placement groups...) are refused with a 400 naming them unless they ask for
nothing (api/unoffered.py); fields nobody defines are refused as unknown, so a typo does not
pass silently. `type` and `region` are
optional here so that their absence gets Linode's field errors from the instance service
(linode-cli sends whatever was given), though the schema still marks them required.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Alerts(Body):
    cpu: int | None = Field(None, ge=0)
    io: int | None = Field(None, ge=0)
    network_in: int | None = Field(None, ge=0)
    network_out: int | None = Field(None, ge=0)
    transfer_quota: int | None = Field(None, ge=0, le=100)


class BackupSchedule(Body):
    day: str | None = None
    window: str | None = None


class Backups(Body):
    """Sent back as shown by linode_api4's save(); asking for backups is refused."""

    enabled: bool | None = None
    available: bool | None = None
    schedule: BackupSchedule | None = None
    last_successful: str | None = None


class Metadata(Body):
    user_data: str | None = Field(None, description="Base64 (at most 65535 characters): cloud-config, a script or "
                                                    "anything cloud-init reads; a cloud-config is checked against "
                                                    "cloud-init's schema.")


class PlacementGroupRef(Body):
    id: int | None = None
    compliant_only: bool | None = None


class InstanceCreate(Body):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"required": ["type", "region"]})

    type: str | None = Field(None, description="A type id from GET /linode/types, e.g. g1-gpu-rtx6000-1.")
    region: str | None = Field(None, description="A region id from GET /regions, e.g. us-east.")
    label: str | None = None
    image: str | None = Field(None, description="An image id from GET /images; omit for an empty disk.")
    root_pass: str | None = None
    authorized_keys: list[str] | None = None
    authorized_users: list[str] | None = None
    booted: bool | None = None
    tags: list[str] | None = None
    group: str | None = None
    metadata: Metadata | None = None
    # features gpucloud does not have: refused unless they ask for nothing (api/unoffered.py)
    backups_enabled: bool | None = None
    backup_id: int | None = None
    stackscript_id: int | None = None
    stackscript_data: dict[str, Any] | None = None
    swap_size: int | None = None
    private_ip: bool | None = None
    firewall_id: int | None = None
    interfaces: list[dict[str, Any]] | None = None
    interface_generation: str | None = None
    placement_group: PlacementGroupRef | None = None
    disk_encryption: str | None = None
    network_helper: bool | None = None
    maintenance_policy: str | None = None
    kernel: str | None = None
    boot_size: int | None = None
    ipv4: list[str] | None = None


class InstanceUpdate(Body):
    label: str | None = None
    group: str | None = None
    tags: list[str] | None = None
    alerts: Alerts | None = None
    watchdog_enabled: bool | None = None
    backups: Backups | None = None  # only as shown: disabled (api/unoffered.py)
    maintenance_policy: str | None = None  # only linode/power_off_on: GPU guests cannot live-migrate


class NoFields(Body):
    """An action that takes no input (linode-cli still sends `{}`)."""


class ConfigRef(Body):
    config_id: int | None = None


class Resize(Body):
    type: str = Field(description="The type to resize to.")
    allow_auto_disk_resize: bool | None = None
    migration_type: Literal["warm", "cold"] | None = None


class Rebuild(Body):
    image: str = Field(description="An image id from GET /images: the disk is wiped and written from it.")
    root_pass: str | None = None
    authorized_keys: list[str] | None = None
    authorized_users: list[str] | None = None
    booted: bool | None = Field(None, description="Boot the rebuilt instance (default true).")
    metadata: Metadata | None = None
    # refused with a reason (api/unoffered.py) when they ask for what we do not have
    disk_encryption: str | None = None
    stackscript_id: int | None = None
    stackscript_data: dict[str, Any] | None = None
    type: str | None = Field(None, description="Refused: resize the instance on its own.")


class RescueDevice(Body):
    disk_id: int | None = None
    volume_id: int | None = None


class RescueDevices(Body):
    sda: RescueDevice | None = None
    sdb: RescueDevice | None = None
    sdc: RescueDevice | None = None
    sdd: RescueDevice | None = None
    sde: RescueDevice | None = None
    sdf: RescueDevice | None = None
    sdg: RescueDevice | None = None


class Rescue(Body):
    devices: RescueDevices | None = None


class RootPassword(Body):
    root_pass: str = Field(description="The new root password; the guest takes it at its next boot.")
class SshKeyCreate(Body):
    ssh_key: str = Field(description="An OpenSSH public key, e.g. 'ssh-ed25519 AAAA... me@laptop'.")
    label: str | None = Field(None, max_length=64)


class SshKeyUpdate(Body):
    label: str | None = Field(None, max_length=64)


class TagCreate(Body):
    label: str = Field(description="3-50 characters.")
    linodes: list[int] | None = Field(None, description="Ids of the account's instances to tag.")
    domains: list[int] | None = None  # refused unless empty: not offered here
    nodebalancers: list[int] | None = None
    volumes: list[int] | None = None
    reserved_ipv4_addresses: list[str] | None = None


class AccountSettingsUpdate(Body):
    """Every field Linode has; each may only be set to the value we serve (api/unoffered.py)."""

    backups_enabled: bool | None = None
    interfaces_for_new_linodes: str | None = None
    longview_subscription: str | None = None
    maintenance_policy: str | None = None
    managed: bool | None = None
    network_helper: bool | None = None
    object_storage: str | None = None
    tfa_enforced: bool | None = None


class TokenCreate(Body):
    label: str | None = Field(None, max_length=100)
    scopes: str | None = Field(None, description="Space-separated, e.g. 'linodes:read_write'; '*' or omitted "
                                                 "means the acting token's own scopes.")
    expiry: str | None = Field(None, description="UTC, YYYY-MM-DDTHH:MM:SS; omitted means never.")


class TokenUpdate(Body):
    label: str | None = Field(None, max_length=100)
