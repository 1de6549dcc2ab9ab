"""Our objects in Linode's JSON shapes (shared/reference/linode-api.md §3).

linode_api4 never re-fetches attributes missing from list or create responses, so every
shape here is the full object, with Linode's field names, units (MB, GB) and time format.
Fields we do not implement carry Linode's "nothing here" values (null, [], false).
"""

from __future__ import annotations

import hashlib
import ipaddress
import uuid

from gpucloud.clock import linode_time
from gpucloud.domain.catalog import GPU_CAPABILITY, Image, Plan, Region
from gpucloud.domain.guest import GuestNetwork

MAINTENANCE_POLICY = "linode/power_off_on"  # passthrough GPUs cannot live-migrate
KERNEL = "linode/grub2"


def plan(p: Plan) -> dict:
    return {
        "id": p.id,
        "label": p.label,
        "class": p.type_class,
        "disk": p.disk_mib,
        "memory": p.memory_mib,
        "vcpus": p.vcpus,
        "gpus": p.gpus,
        "accelerated_devices": 0,
        "transfer": p.transfer_gb,
        "network_out": p.network_out_mbits,
        "price": {"hourly": p.price_hourly, "monthly": p.price_monthly},
        "region_prices": [],
        "addons": {"backups": {"price": {"hourly": p.backups_hourly, "monthly": p.backups_monthly},
                               "region_prices": []}},
        "successor": p.successor,
    }


def region(r: Region, *, show_gpus: bool) -> dict:
    return {
        "id": r.id,
        "label": r.label,
        "country": r.country,
        "capabilities": [c for c in r.capabilities if show_gpus or c != GPU_CAPABILITY],
        "status": r.status,
        "resolvers": {"ipv4": r.resolvers_ipv4, "ipv6": r.resolvers_ipv6},
        "placement_group_limits": {"maximum_pgs_per_customer": None, "maximum_linodes_per_pg": 5,
                                   "maximum_linodes_per_flexible_pg": 5},
        "site_type": r.site_type,
        "monitors": {"alerts": [], "metrics": []},
    }


def image(i: Image) -> dict:
    return {
        "id": i.id,
        "label": i.label,
        "description": i.description,
        "created": i.created,
        "updated": i.created,
        "created_by": "linode",
        "deprecated": i.deprecated,
        "eol": i.eol,
        "expiry": None,
        "is_public": True,
        "size": i.size_mib,
        "total_size": i.size_mib,
        "status": "available",
        "type": "manual",
        "vendor": i.vendor,
        "capabilities": list(i.capabilities),
        "tags": [],
        "regions": [],
    }


# --- instances --------------------------------------------------------------------------------


def default_alerts(p: Plan | None) -> dict:
    vcpus = p.vcpus if p else 1
    return {"cpu": 90 * vcpus, "io": 10000, "network_in": 10, "network_out": 10, "transfer_quota": 80}


def specs(p: Plan | None) -> dict:
    if p is None:
        return {"disk": 0, "memory": 0, "vcpus": 0, "gpus": 0, "transfer": 0, "accelerated_devices": 0}
    return {"disk": p.disk_mib, "memory": p.memory_mib, "vcpus": p.vcpus, "gpus": p.gpus,
            "transfer": p.transfer_gb, "accelerated_devices": 0}


def host_uuid(host_id: int | None) -> str | None:
    """A stable opaque id for the host, as Linode shows one (never the host's name)."""
    return hashlib.sha1(f"gpucloud-host-{host_id}".encode()).hexdigest() if host_id is not None else None


def instance(inst, p: Plan | None, r: Region | None) -> dict:
    """`inst` is a `store.tables.Instance` (or anything with its attributes)."""
    return {
        "id": inst.id,
        "label": inst.label,
        "group": inst.group or "",
        "status": inst.status,
        "created": linode_time(inst.created_at),
        "updated": linode_time(inst.updated_at),
        "type": inst.type_id,
        "region": inst.region_id,
        "image": inst.image,
        "ipv4": [inst.ipv4] if inst.ipv4 else [],
        "ipv6": _ipv6_with_prefix(inst.ipv6),
        "specs": specs(p),
        "alerts": {**default_alerts(p), **(inst.alerts or {})},
        "backups": {"enabled": False, "available": False, "schedule": {"day": None, "window": None},
                    "last_successful": None},
        "hypervisor": "kvm",
        "watchdog_enabled": inst.watchdog_enabled,
        "tags": list(inst.tags or []),
        "host_uuid": host_uuid(inst.host_id),
        "has_user_data": inst.user_data is not None,
        "capabilities": [],
        "lke_cluster_id": None,
        "placement_group": None,
        "site_type": r.site_type if r else "core",
        "disk_encryption": "disabled",
        "interface_generation": "legacy_config",
        "maintenance_policy": MAINTENANCE_POLICY,
        "locks": [],
    }


def _ipv6_with_prefix(address: str | None) -> str | None:
    if not address:
        return None
    return address if "/" in address else f"{address}/128"


def instance_ips(inst, network: GuestNetwork) -> dict:
    """GET …/ips: linode_api4 reads ipv4.{public,private,shared,reserved} and
    ipv6.{slaac,link_local,global} and raises KeyError when one is missing. Gateways and
    prefixes are those of the pools the addresses come from (what the guest configures)."""
    public = []
    if inst.ipv4:
        net = ipaddress.ip_network(f"{inst.ipv4}/{network.ipv4_prefix}", strict=False)
        public.append({"address": inst.ipv4, "gateway": network.ipv4_gateway, "subnet_mask": str(net.netmask),
                       "prefix": net.prefixlen, "type": "ipv4", "public": True, "rdns": None,
                       "linode_id": inst.id, "region": inst.region_id, "vpc_nat_1_1": None, "reserved": False})
    v6 = (inst.ipv6 or "").split("/")[0]
    slaac = None
    link_local = None
    if v6:
        prefix = network.ipv6_prefix if network.ipv6 else 64
        mask = str(ipaddress.ip_network(f"{v6}/{prefix}", strict=False).netmask)
        slaac = {"address": v6, "gateway": network.ipv6_gateway, "subnet_mask": mask, "prefix": prefix,
                 "type": "ipv6", "public": True, "rdns": None, "linode_id": inst.id, "region": inst.region_id}
        interface_id = int(ipaddress.IPv6Address(v6)) & 0xFFFF_FFFF_FFFF_FFFF  # the SLAAC address's lower half
        link_local = {**slaac, "address": str(ipaddress.IPv6Address((0xFE80 << 112) | interface_id)),
                      "gateway": None, "subnet_mask": "ffff:ffff:ffff:ffff::", "prefix": 64, "public": False}
    return {"ipv4": {"public": public, "private": [], "shared": [], "reserved": [], "vpc": []},
            "ipv6": {"slaac": slaac, "link_local": link_local, "global": []}}


def instance_disk(inst, p: Plan | None) -> dict:
    """The one disk an instance has: its whole plan disk, from its image (or empty)."""
    return {"id": inst.id, "label": f"{inst.image or 'Empty'} Disk", "status": "ready",
            "size": p.disk_mib if p else 0, "filesystem": "ext4" if inst.image else "raw",
            "created": linode_time(inst.created_at), "updated": linode_time(inst.updated_at),
            "disk_encryption": "disabled"}


def instance_config(inst, p: Plan | None) -> dict:
    """The one configuration profile an instance has; its id is the instance's id."""
    return {
        "id": inst.id,
        "label": f"My {inst.image or 'Empty'} Disk Profile",
        "comments": "",
        "kernel": KERNEL,
        "memory_limit": 0,
        "root_device": "/dev/sda",
        "run_level": "default",
        "virt_mode": "paravirt",
        "helpers": {"updatedb_disabled": True, "distro": True, "modules_dep": True, "network": True,
                    "devtmpfs_automount": True},
        "devices": {"sda": {"disk_id": inst.id, "volume_id": None}, **{f"sd{c}": None for c in "bcdefgh"}},
        "interfaces": [],
        "created": linode_time(inst.created_at),
        "updated": linode_time(inst.updated_at),
    }


# --- events, account, profile, tokens ------------------------------------------------------------


def entity_url(kind: str, entity_id: int | None, prefix: str = "/v4") -> str | None:
    if entity_id is None:
        return None
    if kind == "linode":
        return f"{prefix}/linode/instances/{entity_id}"
    return None


def event(e) -> dict:
    """`e` is a `store.tables.Event`."""
    duration = None
    if e.started_at and e.finished_at:
        duration = round((e.finished_at - e.started_at).total_seconds(), 1)
    entity = None
    if e.entity_id is not None:
        entity = {"id": e.entity_id, "label": e.entity_label, "type": e.entity_type,
                  "url": entity_url(e.entity_type, e.entity_id)}
    return {
        "id": e.id,
        "action": e.action,
        "created": linode_time(e.created_at),
        "updated": linode_time(e.updated_at),
        "username": e.username,
        "status": e.status,
        "percent_complete": e.percent_complete,
        "time_remaining": 0 if e.status == "finished" else None,
        "rate": None,
        "duration": duration,
        "message": e.shown_message,
        "seen": e.seen,
        "read": e.seen,
        "entity": entity,
        "secondary_entity": e.secondary_entity,
        "details": {},
    }


def account(a, *, gpus: bool) -> dict:
    """`a` is a `store.tables.Account`. The money fields (balance, balance_uninvoiced,
    active_promotions) come from `billing_views.account_money`."""
    return {
        "email": a.email,
        "company": a.company,
        "first_name": "",
        "last_name": "",
        "address_1": "",
        "address_2": "",
        "city": "",
        "state": "",
        "zip": "",
        "country": "",
        "phone": "",
        "tax_id": "",
        "billing_source": "linode",
        "credit_card": {"last_four": None, "expiry": None},
        "active_since": linode_time(a.created_at),
        "capabilities": ["Linodes", *([GPU_CAPABILITY] if gpus else [])],
        "euuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"gpucloud:account:{a.id}")).upper(),
    }


def profile(user_id: int, username: str, email: str) -> dict:
    return {
        "uid": user_id,
        "username": username,
        "email": email,
        "timezone": "GMT",
        "email_notifications": True,
        "referrals": {"code": "", "url": "", "total": 0, "completed": 0, "pending": 0, "credit": 0},
        "ip_whitelist_enabled": False,
        "lish_auth_method": "password_keys",
        "authorized_keys": None,
        "two_factor_auth": False,
        "restricted": False,
        "authentication_type": "password",
        "user_type": "default",
        "verified_phone_number": None,
    }


def ssh_key(k) -> dict:
    """`k` is a `store.tables.SshKey`."""
    return {"id": k.id, "label": k.label, "ssh_key": k.ssh_key, "created": linode_time(k.created_at)}


def user(u, key_labels: list[str]) -> dict:
    """`u` is a `store.tables.User`; every user is unrestricted for now. `ssh_keys`: the labels of
    the user's profile keys, as Linode lists them."""
    return {"username": u.username, "email": u.email, "restricted": False, "ssh_keys": key_labels,
            "tfa_enabled": False, "user_type": "default", "last_login": None, "password_created": None,
            "verified_phone_number": None}


def token(t, *, secret: str | None = None) -> dict:
    """A personal access token; `token` is its first 16 characters, or the whole secret once."""
    return {"id": t.id, "label": t.label, "scopes": t.scopes, "created": linode_time(t.created),
            "expiry": linode_time(t.expiry), "token": secret if secret is not None else t.prefix}
