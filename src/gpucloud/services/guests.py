"""An instance's domain as its claims describe it: the spec the workers hand to hypervisors,
and the XML operators read with `gpucloud instance xml`."""

from __future__ import annotations

import base64
import uuid as uuidlib
from dataclasses import replace

from sqlalchemy.orm import Session

from gpucloud.catalog import load_catalog
from gpucloud.domain.guest import CellClaim, CloudInit, DomainSpec, domain_name, spec_from_claims
from gpucloud.errors import NotFound
from gpucloud.hypervisor import cloudinit
from gpucloud.hypervisor.domain_xml import Nic, build_domain_xml, mac_address
from gpucloud.services import addresses
from gpucloud.store import instances as q
from gpucloud.store.db import Database
from gpucloud.store.fleet import gpu_of
from gpucloud.store.host_states import cpu_topology
from gpucloud.store.instances import InstanceRow


def instance_uuid(instance: InstanceRow) -> str:
    """Stable per instance; names the libvirt domain's UUID and the cloud-init instance-id."""
    return str(
        uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"gpucloud:instance:{instance.id}:{instance.created_at.isoformat()}")
    )


def domain_spec(db: Database, instance_id: int) -> DomainSpec:
    with db.read() as s:
        instance = q.row_of(s, instance_id)
        if instance is None or instance.host_id is None:
            raise NotFound(f"no instance {instance_id} placed on a host")
        return spec_in_session(s, instance)


def spec_in_session(s: Session, instance: InstanceRow) -> DomainSpec:
    if instance.host_id is None:
        raise RuntimeError(f"instance {instance.id} is not placed on a host")
    layout, reserved = cpu_topology(s, instance.host_id)
    host_settings = instance.host_settings
    if host_settings is None:
        raise RuntimeError(f"instance {instance.id} is on host {instance.host_id}, which does not exist")
    held = q.claims_of(s, instance.id)
    # Only a shared guest's cpuset avoids other guests' pinned threads; a pinned one has its own.
    pinned_elsewhere = set() if held["cpus"] else q.pinned_cpus_of_others(s, instance.host_id, instance.id)
    plan = load_catalog().plan(instance.type_id)
    if plan is None:
        raise RuntimeError(f"instance {instance.id} has the unknown plan {instance.type_id!r}")
    mac = instance.mac or mac_address(instance_uuid(instance))
    spec = spec_from_claims(
        name=domain_name(instance.id),
        uuid=instance_uuid(instance),
        title=instance.label,
        topology=replace(layout, gpus=tuple(gpu_of(g) for g in held["gpus"])),
        cells=[CellClaim(m["guest_cell"], m["node"], m["memory_mib"], m["hugepages_1g"], m["shared_vcpus"])
               for m in held["memory"]],
        pins={c["guest_vcpu"]: c["cpu"] for c in held["cpus"]},
        gpu_addresses=[g.pci_address for g in held["gpus"]],
        reserved_cpus=set(reserved),
        pinned_elsewhere=pinned_elsewhere,
        image=instance.image,
        disk_mib=plan.disk_mib,
        cloud_init=CloudInit(hostname=instance.label, root_pass_hash=instance.root_pass_hash,
                             authorized_keys=instance.authorized_keys,
                             user_data=base64.b64decode(instance.user_data) if instance.user_data else None,
                             network=addresses.network_in(instance.pools, instance, mac)),
        domain_type=host_settings.get("domain_type", "kvm"),
    )
    return replace(spec, mac=mac)


def seed_files(db: Database, instance_id: int) -> dict[str, str]:
    """The cloud-init seed's files the instance's guest is given (meta-data, user-data and, with
    addresses, network-config), as text."""
    spec = domain_spec(db, instance_id)
    if spec.cloud_init is None:
        raise NotFound(f"instance {instance_id} has no cloud-init seed")
    return cloudinit.seed_files(spec.cloud_init, spec.uuid)


def domain_xml(db: Database, instance_id: int) -> str:
    """The libvirt XML the instance's host is (or would be) given, with that host's NIC."""
    with db.read() as s:
        instance = q.row_of(s, instance_id)
        if instance is None or instance.host_id is None:
            raise NotFound(f"no instance {instance_id} placed on a host")
        spec = spec_in_session(s, instance)
    host_settings = instance.host_settings or {}
    nic = Nic.parse(host_settings["nic"]) if "nic" in host_settings else Nic()
    return build_domain_xml(spec, nic=nic)
