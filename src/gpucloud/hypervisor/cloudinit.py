"""The cloud-init NoCloud seed: a small ISO labelled `cidata` with `user-data`, `meta-data` and,
when the guest has addresses of its own, `network-config`.

Written in memory with pycdlib (pure Python), so the control plane needs no genisoimage
and can upload the seed to any host through libvirt's storage API. The user-data is JSON
under `#cloud-config`: JSON is YAML, and it needs no escaping rules of our own.

A customer's own user data (`metadata.user_data`) travels in the same file: the seed's
user-data is then a MIME multipart message, our cloud-config first and theirs second, so
cloud-init merges them and the customer's keys win where both set one (a `users` list of
theirs replaces root's). Their cloud-config is checked with cloud-init's own schema
validator (`cloud-init schema`, Debian's cloud-init package) before it is accepted.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import tempfile
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pycdlib

from gpucloud.domain.guest import CloudInit, GuestNetwork

log = logging.getLogger(__name__)

VOLUME_LABEL = "cidata"  # what cloud-init's NoCloud datasource looks for
INTERFACE = "eth0"  # the guest's name for its one interface (matched by MAC)
PASSWORD_MARKERS = "/var/lib/gpucloud/root-password"  # in the guest: one file per root password applied
SCHEMA_TIMEOUT_SECONDS = 30


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
def seed_user_data(config: CloudInit) -> str:
    """The seed's user-data file: ours alone, or ours and the customer's as one MIME multipart
    message (cloud-init finds each part's kind from its first line: #cloud-config, #!...)."""
    ours = user_data(config)
    if config.user_data is None:
        return ours
    digest = hashlib.sha256(ours.encode() + config.user_data).hexdigest()[:32]
    message = MIMEMultipart(boundary=f"==gpucloud-{digest}==")  # the same seed for the same data
    message.attach(MIMEText(ours, "cloud-config"))
    try:
        theirs = MIMEText(config.user_data.decode(), "plain")  # text/plain: cloud-init reads the kind from it
    except UnicodeDecodeError:  # gzip or other bytes: cloud-init looks inside octet streams too
        message.attach(MIMEApplication(config.user_data))
    else:
        message.attach(theirs)
    return message.as_string() + "\n"


def cloud_config_problem(data: bytes) -> str | None:
    """What cloud-init's schema validator says is wrong with this cloud-config, or None when it
    is valid. Without the validator installed the document passes, with a warning in the log."""
    program = shutil.which("cloud-init")
    if program is None:
        log.warning("cloud-init is not installed: user data is accepted without its schema check")
        return None
    with tempfile.NamedTemporaryFile(prefix="user-data-", suffix=".yaml") as f:
        f.write(data)
        f.flush()
        done = subprocess.run([program, "schema", "--config-file", f.name], capture_output=True, text=True,
                              timeout=SCHEMA_TIMEOUT_SECONDS, check=False, env={"PATH": os.defpath, "LANG": "C.UTF-8"})
        if done.returncode == 0:
            return None
        return _schema_complaint(done.stdout + "\n" + done.stderr, f.name)


def _schema_complaint(output: str, path: str) -> str:
    lines = [line.strip() for line in output.replace(path, "user_data").splitlines()]
    found = [line for line in lines if line and line not in ("Error:", "Cloud config schema deprecations:")]
    text = " ".join(found) or "cloud-init's schema validator refused it"
    for prefix in ("Cloud config schema errors: ",):
        text = text.replace(prefix, "")
    return text[:500]


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
    files = {"meta-data": meta_data(config, instance_id), "user-data": seed_user_data(config)}
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
