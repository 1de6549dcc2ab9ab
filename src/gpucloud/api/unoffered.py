"""What this cloud does not offer, in one place: the Linode routes and request fields we do not
serve, and the reason a client gets for each.

A client of the Linode API (linode-cli walks them all) asks for routes we have no use for:
backups, volumes, firewalls, StackScripts... A bare `404 Not found` there reads as "your
Linode does not exist", so a route listed here answers its status (404 when no route has the
path, 405 when the path is served for other methods) with a reason naming the feature:
`{"errors": [{"reason": "Block Storage volumes are not offered by this cloud"}]}`. A route
that is served always wins: an entry here only speaks where routing found nothing.

Request fields Linode defines for features we lack are declared in the bodies (so a typo is
still an unknown field), and refused here with a 400 naming the field, unless the value is
the one that asks for nothing (`backups_enabled: false`, `private_ip: false`...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from gpucloud.api.views import KERNEL, MAINTENANCE_POLICY
from gpucloud.errors import ValidationErrors

SUFFIX = "not offered by this cloud"
VERSION_PREFIXES = ("/v4beta/", "/v4/")
ANY = "*"  # one path segment, whatever it is


@dataclass(frozen=True)
class Unoffered:
    path: tuple[str, ...]  # segments after /v4; ANY matches one segment
    subject: str  # "Block Storage volumes are"
    methods: frozenset[str] | None = None  # None: every method
    exact: bool = False  # this path only, not the paths below it

    @property
    def reason(self) -> str:
        return f"{self.subject} {SUFFIX}"


def _entry(methods: str, path: str, subject: str) -> Unoffered:
    """`path` covers the paths below it too, unless it ends in `$`."""
    chosen = None if methods == ANY else frozenset(methods.split(","))
    return Unoffered(tuple(path.strip("/").rstrip("$").split("/")), subject, chosen, exact=path.endswith("$"))


BACKUPS = "Backups are"
VOLUMES = "Block Storage volumes are"
FIREWALLS = "Cloud Firewalls are"
STACKSCRIPTS = "StackScripts are"
NODEBALANCERS = "NodeBalancers are"
INTERFACES = "Linode Interfaces (VPC and VLAN attachments) are"
CUSTOM_IMAGES = "Custom images (capture, upload, edit, replicate, share) are"
TFA = "Two-factor authentication settings are"
LOGINS = "Login histories are"
DISKS = "Managing disks (each instance has one disk, sized by its plan) is"
CONFIGS = "Editing configuration profiles (each instance has one, managed for it) is"
IPS = "Adding, changing or sharing IP addresses is"
BILLING = "Stored payment methods are"

# Order does not matter: the longest matching path wins.
ROUTES: tuple[Unoffered, ...] = (
    # whole products
    _entry(ANY, "/volumes", VOLUMES),
    _entry(ANY, "/networking/firewalls", FIREWALLS),
    _entry(ANY, "/networking/vlans", "VLANs are"),
    _entry(ANY, "/networking", IPS),
    _entry(ANY, "/nodebalancers", NODEBALANCERS),
    _entry(ANY, "/lke", "Kubernetes (LKE) clusters are"),
    _entry(ANY, "/domains", "DNS domains are"),
    _entry(ANY, "/object-storage", "Object Storage is"),
    _entry(ANY, "/databases", "Managed Databases are"),
    _entry(ANY, "/linode/stackscripts", STACKSCRIPTS),
    _entry(ANY, "/linode/kernels", "Choosing a kernel (guests boot their own with GRUB 2) is"),
    _entry(ANY, "/vpcs", "VPCs are"),
    _entry(ANY, "/placement", "Placement Groups are"),
    _entry(ANY, "/longview", "Longview is"),
    _entry(ANY, "/managed", "Linode Managed is"),
    _entry(ANY, "/support", "Support tickets through the API are"),
    _entry(ANY, "/monitor", "Monitoring (metrics and alerts) is"),
    _entry(ANY, "/betas", "Beta programs are"),
    _entry(ANY, "/network-transfer", "Network transfer pricing is"),
    _entry(ANY, "/maintenance", "Maintenance policies are"),
    _entry(ANY, "/marketplace", "Marketplace apps are"),
    _entry(ANY, "/streams", "Log streams are"),
    _entry(ANY, "/resource-locks", "Resource locks are"),
    _entry(ANY, "/prefixlists", "Prefix lists are"),
    # instances: what one instance does not have
    _entry(ANY, "/linode/instances/*/backups", BACKUPS),
    _entry(ANY, "/linode/instances/*/clone", "Cloning instances is"),
    _entry("POST,PUT,DELETE", "/linode/instances/*/configs", CONFIGS),
    _entry(ANY, "/linode/instances/*/configs/*/interfaces", INTERFACES),
    _entry("POST,PUT,DELETE", "/linode/instances/*/disks", DISKS),
    _entry(ANY, "/linode/instances/*/disks/*/clone", DISKS),
    _entry(ANY, "/linode/instances/*/disks/*/password", DISKS),
    _entry(ANY, "/linode/instances/*/disks/*/resize", DISKS),
    _entry(ANY, "/linode/instances/*/firewalls", FIREWALLS),
    _entry(ANY, "/linode/instances/*/interfaces", INTERFACES),
    _entry(ANY, "/linode/instances/*/upgrade-interfaces", INTERFACES),
    _entry("POST,PUT,DELETE", "/linode/instances/*/ips", IPS),
    _entry(ANY, "/linode/instances/*/ips/*", IPS),
    _entry(ANY, "/linode/instances/*/migrate", "Migrating instances to another region is"),
    _entry(ANY, "/linode/instances/*/mutate", "Plan upgrades (mutate) are"),
    _entry(ANY, "/linode/instances/*/nodebalancers", NODEBALANCERS),
    _entry(ANY, "/linode/instances/*/volumes", VOLUMES),
    _entry(ANY, "/linode/instances/*/stats/*", "Statistics by month (the last 24 hours are kept: GET …/stats) are"),
    # regions, images
    _entry(ANY, "/regions/vpc-availability", "VPCs are"),
    _entry(ANY, "/regions/*/vpc-availability", "VPCs are"),
    _entry("POST", "/images$", CUSTOM_IMAGES),
    _entry(ANY, "/images/upload", CUSTOM_IMAGES),
    _entry(ANY, "/images/sharegroups", CUSTOM_IMAGES),
    _entry("PUT,POST", "/images/*/*", CUSTOM_IMAGES),
    _entry(ANY, "/images/*/*/regions", CUSTOM_IMAGES),
    _entry(ANY, "/images/*/*/sharegroups", CUSTOM_IMAGES),
    # account
    _entry("PUT", "/account$", "Editing account contact details through the API is"),
    _entry(ANY, "/account/availability", "Per-account service availability is (see GET /regions/availability)"),
    _entry(ANY, "/account/cancel", "Closing an account through the API is"),
    _entry(ANY, "/account/logins", LOGINS),
    _entry(ANY, "/account/maintenance", "Maintenance schedules are"),
    _entry(ANY, "/account/oauth-clients", "OAuth clients are"),
    _entry(ANY, "/account/settings/managed-enable", "Linode Managed is"),
    _entry(ANY, "/account/tfa-optional-users", TFA),
    _entry("POST,PUT,DELETE", "/account/users", "Adding or changing account users through the API is"),
    _entry(ANY, "/account/users/*", "Managing account users through the API is"),
    _entry(ANY, "/account/child-accounts", "Child accounts are"),
    _entry(ANY, "/account/service-transfers", "Service transfers are"),
    _entry(ANY, "/account/entity-transfers", "Service transfers are"),
    _entry(ANY, "/account/agreements", "Agreements are"),
    _entry(ANY, "/account/betas", "Beta programs are"),
    _entry(ANY, "/account/payment-methods", BILLING),
    _entry("POST", "/account/payments$", "Card payments through the API are"),
    # profile
    _entry("PUT", "/profile$", "Editing profile settings through the API is"),
    _entry(ANY, "/profile/apps", "Authorized OAuth apps are"),
    _entry(ANY, "/profile/devices", "Trusted devices are"),
    _entry(ANY, "/profile/logins", LOGINS),
    _entry(ANY, "/profile/tfa-disable", TFA),
    _entry(ANY, "/profile/tfa-enable", TFA),
    _entry(ANY, "/profile/tfa-enable-confirm", TFA),
    _entry(ANY, "/profile/preferences", "Profile preferences are"),
    _entry(ANY, "/profile/security-questions", "Security questions are"),
    _entry(ANY, "/profile/phone-number", "Phone verification is"),
)


def _segments(path: str) -> tuple[str, ...] | None:
    for prefix in VERSION_PREFIXES:
        if path.startswith(prefix):
            return tuple(s for s in path[len(prefix) :].split("/") if s)
    return None


def _matches(entry: Unoffered, segments: tuple[str, ...], method: str) -> bool:
    if entry.methods is not None and method not in entry.methods:
        return False
    if len(segments) < len(entry.path) or (entry.exact and len(segments) != len(entry.path)):
        return False
    return all(
        want in (ANY, got) for want, got in zip(entry.path, segments, strict=False))


def route_reason(method: str, path: str) -> str | None:
    """The reason for a request no route serves, when it asks for something not offered here."""
    segments = _segments(path)
    if segments is None:
        return None
    found = [e for e in ROUTES if _matches(e, segments, method.upper())]
    if not found:
        return None
    return max(found, key=lambda e: len(e.path)).reason


# --- request fields -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldRule:
    subject: str
    allowed: Callable[[Any], bool]  # the values that ask for nothing we lack

    @property
    def reason(self) -> str:
        return f"{self.subject} {SUFFIX}"


def _absent(value: Any) -> bool:
    return value is None


def _falsy(value: Any) -> bool:
    return value is None or value is False


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {}


def _one_of(*values: Any) -> Callable[[Any], bool]:
    return lambda value: value is None or value in values


CREATE_FIELDS: dict[str, FieldRule] = {
    "backups_enabled": FieldRule(BACKUPS, _falsy),
    "backup_id": FieldRule(BACKUPS, _absent),
    "stackscript_id": FieldRule(STACKSCRIPTS, _absent),
    "stackscript_data": FieldRule(STACKSCRIPTS, _empty),
    "swap_size": FieldRule("Swap disks (each instance has one disk, sized by its plan) are", _absent),
    "private_ip": FieldRule("Private IPv4 addresses are", _falsy),
    "firewall_id": FieldRule(FIREWALLS, _absent),
    "interfaces": FieldRule(INTERFACES, _empty),
    "interface_generation": FieldRule(INTERFACES, _one_of("legacy_config")),
    "placement_group": FieldRule("Placement Groups are", _empty),
    "disk_encryption": FieldRule("Disk encryption is", _one_of("disabled")),
    "network_helper": FieldRule("Turning the Network Helper off is", _one_of(True)),
    "maintenance_policy": FieldRule("Live migration (linode/migrate) is", _one_of(MAINTENANCE_POLICY)),
    "kernel": FieldRule("Choosing a kernel (guests boot their own with GRUB 2) is", _one_of(KERNEL)),
    "boot_size": FieldRule("Sizing the boot disk (it is the plan's whole disk) is", _absent),
    "ipv4": FieldRule("Reserved IPv4 addresses are", _empty),
}

UPDATE_FIELDS: dict[str, FieldRule] = {
    "backups": FieldRule(BACKUPS, lambda value: value is None or (
        not value.get("enabled") and not any((value.get("schedule") or {}).values()))),
    "maintenance_policy": CREATE_FIELDS["maintenance_policy"],
}

RESIZE_FIELDS: dict[str, FieldRule] = {
    "allow_auto_disk_resize": FieldRule("Keeping the disk's size on resize (it follows the plan) is", _one_of(True)),
    "migration_type": FieldRule("Warm resizes (GPU guests are resized cold) are", _one_of("cold")),
}


REBUILD_FIELDS: dict[str, FieldRule] = {
    "stackscript_id": CREATE_FIELDS["stackscript_id"],
    "stackscript_data": CREATE_FIELDS["stackscript_data"],
    "disk_encryption": CREATE_FIELDS["disk_encryption"],
    "type": FieldRule("Resizing while rebuilding (resize the Linode on its own) is", _absent),
}


def refuse(body: BaseModel, rules: dict[str, FieldRule]) -> None:
    """A field of `body` asking for a feature we do not have is a 400 naming it (all such fields
    at once), never silently dropped."""
    sent = body.model_dump(exclude_unset=True)
    refused: list[tuple[str | None, str]] = [(name, rule.reason) for name, rule in rules.items()
                                             if name in sent and not rule.allowed(sent[name])]
    if refused:
        raise ValidationErrors(refused)

TAG_FIELDS: dict[str, FieldRule] = {
    "domains": FieldRule("DNS domains are", _empty),
    "nodebalancers": FieldRule(NODEBALANCERS, _empty),
    "volumes": FieldRule(VOLUMES, _empty),
    "reserved_ipv4_addresses": CREATE_FIELDS["ipv4"],
}

# GET /account/settings: what this cloud does, fixed for every account. PUT may send these
# values (linode_api4's save() sends them all back); any other is refused by SETTINGS_FIELDS.
ACCOUNT_SETTINGS: dict[str, Any] = {
    "backups_enabled": False,
    "interfaces_for_new_linodes": "legacy_config_only",
    "longview_subscription": None,
    "maintenance_policy": MAINTENANCE_POLICY,
    "managed": False,
    "network_helper": True,
    "object_storage": "disabled",
    "tfa_enforced": False,
}

SETTINGS_FIELDS: dict[str, FieldRule] = {
    "backups_enabled": FieldRule(BACKUPS, _falsy),
    "interfaces_for_new_linodes": FieldRule(INTERFACES, _one_of("legacy_config_only")),
    "longview_subscription": FieldRule("Longview is", _absent),
    "maintenance_policy": CREATE_FIELDS["maintenance_policy"],
    "managed": FieldRule("Linode Managed is", _falsy),
    "network_helper": CREATE_FIELDS["network_helper"],
    "object_storage": FieldRule("Object Storage is", _one_of("disabled")),
    "tfa_enforced": FieldRule("Two-factor authentication is", _falsy),
}
