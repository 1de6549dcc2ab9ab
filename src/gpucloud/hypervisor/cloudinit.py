"""The cloud-init NoCloud seed: a small ISO labelled `cidata` with `user-data`, `meta-data` and,
when the guest has addresses of its own, `network-config`.

Written in memory with pycdlib (pure Python), so the control plane needs no genisoimage
and can upload the seed to any host through libvirt's storage API. The user-data is JSON
under `#cloud-config`: JSON is YAML, and it needs no escaping rules of our own.
"""

from __future__ import annotations

import hashlib
import io
import json

import pycdlib

from gpucloud.domain.guest import CloudInit, GuestNetwork

VOLUME_LABEL = "cidata"  # what cloud-init's NoCloud datasource looks for
INTERFACE = "eth0"  # the guest's name for its one interface (matched by MAC)
PASSWORD_MARKERS = "/var/lib/gpucloud/root-password"  # in the guest: one file per root password applied


def user_data(config: CloudInit) -> str:
    """Hostname, root's password hash and SSH keys, the way Linode sets up a fresh instance."""
    root: dict[str, object] = {"name": "root"}
    if config.root_pass_hash:
        root["hashed_passwd"] = config.root_pass_hash
        root["lock_passwd"] = False
    if config.authorized_keys:
        root["ssh_authorized_keys"] = list(config.authorized_keys)
    document: dict[str, object] = {
        "hostname": config.hostname,
        "preserve_hostname": False,
        "disable_root": False,
        "ssh_pwauth": bool(config.root_pass_hash),
        "users": [root],
    }
    if config.root_pass_hash:
        document["bootcmd"] = root_password_bootcmd(config.root_pass_hash)
    return "#cloud-config\n" + json.dumps(document, indent=2) + "\n"


def root_password_bootcmd(root_pass_hash: str) -> list[str]:
    """A reset root password must reach a guest whose disk was set up long ago, but cloud-init's
    users module runs once per instance. So the hash is also set at boot, once per hash (a
    marker named after it), which leaves a password changed inside the guest alone until the
    next reset. A crypt(3) hash has no quote, so single quotes hold it safely."""
    marker = f"{PASSWORD_MARKERS}/{hashlib.sha256(root_pass_hash.encode()).hexdigest()[:16]}"
    return [f"[ -e {marker} ] || {{ echo 'root:{root_pass_hash}' | chpasswd -e && mkdir -p {PASSWORD_MARKERS} "
            f"&& touch {marker}; }}"]


def meta_data(config: CloudInit, instance_id: str) -> str:
    """A new instance-id makes cloud-init run again, so it is the domain's UUID."""
    return json.dumps({"instance-id": instance_id, "local-hostname": config.hostname}, indent=2) + "\n"


def network_config(network: GuestNetwork) -> str:
    """Network config version 2 (netplan's format): the interface with the guest's MAC gets its
    static addresses, its pools' gateways and the region's resolvers. `gateway4`/`gateway6`
    rather than `routes`: cloud-init 22 (Debian 12's) turns a `::/0` route into `::/64`
    when it renders for ifupdown or networkd, and netplan still takes both keys."""
    addresses: list[str] = []
    interface: dict[str, object] = {"match": {"macaddress": network.mac}, "set-name": INTERFACE,
                                    "addresses": addresses, "dhcp4": False, "dhcp6": False}
    if network.ipv4:
        addresses.append(f"{network.ipv4}/{network.ipv4_prefix}")
        if network.ipv4_gateway:
            interface["gateway4"] = network.ipv4_gateway
    if network.ipv6:
        addresses.append(f"{network.ipv6}/{network.ipv6_prefix}")
        if network.ipv6_gateway:
            interface["gateway6"] = network.ipv6_gateway
    if network.resolvers:
        interface["nameservers"] = {"addresses": list(network.resolvers)}
    document = {"version": 2, "ethernets": {INTERFACE: interface}}
    return json.dumps(document, indent=2) + "\n"


def seed_files(config: CloudInit, instance_id: str) -> dict[str, str]:
    """The seed's files by name, as the guest reads them (and `gpucloud instance seed` shows)."""
    files = {"meta-data": meta_data(config, instance_id), "user-data": user_data(config)}
    if config.network is not None:
        files["network-config"] = network_config(config.network)
    return files


def nocloud_iso(config: CloudInit, instance_id: str) -> bytes:
    """The seed ISO image (ISO 9660 with Joliet and Rock Ridge names) as bytes."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=VOLUME_LABEL)
    try:
        for name, text in seed_files(config, instance_id).items():
            data = text.encode()
            iso9660_name = "/" + name.replace("-", "").upper() + ".;1"
            iso.add_fp(io.BytesIO(data), len(data), iso9660_name, rr_name=name, joliet_path="/" + name)
        out = io.BytesIO()
        iso.write_fp(out)
        return out.getvalue()
    finally:
        iso.close()


def read_nocloud_iso(image: bytes) -> dict[str, str]:
    """The files of a seed ISO by name, and its label under 'volume-label': for tests and debugging."""
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(image))
    try:
        files: dict[str, str] = {"volume-label": iso.pvd.volume_identifier.decode().strip()}
        present = {child.file_identifier().decode("utf-16-be") for child in iso.list_children(joliet_path="/")}
        for name in ("user-data", "meta-data", "network-config"):
            if name not in present:
                continue
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, joliet_path="/" + name)
            files[name] = out.getvalue().decode()
        return files
    finally:
        iso.close()
