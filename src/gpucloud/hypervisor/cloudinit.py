"""The cloud-init NoCloud seed: a small ISO labelled `cidata` with `user-data` and `meta-data`.

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

from gpucloud.domain.guest import CloudInit

log = logging.getLogger(__name__)

VOLUME_LABEL = "cidata"  # what cloud-init's NoCloud datasource looks for
SCHEMA_TIMEOUT_SECONDS = 30


def user_data(config: CloudInit) -> str:
    """Hostname, root's password hash and SSH keys, the way Linode sets up a fresh instance."""
    root: dict[str, object] = {"name": "root"}
    if config.root_pass_hash:
        root["hashed_passwd"] = config.root_pass_hash
        root["lock_passwd"] = False
    if config.authorized_keys:
        root["ssh_authorized_keys"] = list(config.authorized_keys)
    document = {
        "hostname": config.hostname,
        "preserve_hostname": False,
        "disable_root": False,
        "ssh_pwauth": bool(config.root_pass_hash),
        "users": [root],
    }
    return "#cloud-config\n" + json.dumps(document, indent=2) + "\n"


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


def nocloud_iso(config: CloudInit, instance_id: str) -> bytes:
    """The seed ISO image (ISO 9660 with Joliet and Rock Ridge names) as bytes."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=VOLUME_LABEL)
    try:
        for name, text in (("user-data", seed_user_data(config)), ("meta-data", meta_data(config, instance_id))):
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
        for name in ("user-data", "meta-data"):
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, joliet_path="/" + name)
            files[name] = out.getvalue().decode()
        return files
    finally:
        iso.close()
