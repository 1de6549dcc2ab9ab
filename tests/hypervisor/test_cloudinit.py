"""The NoCloud seed: an ISO cloud-init recognises (label `cidata`) holding our user-data and meta-data."""

from __future__ import annotations

import json
import subprocess

from gpucloud.domain.guest import CloudInit
from gpucloud.hypervisor.cloudinit import nocloud_iso, read_nocloud_iso


def test_seed_carries_hostname_password_hash_and_keys(tmp_path):
    config = CloudInit("gpu-box-1", "$6$salt$hash", ("ssh-ed25519 AAAA one@x", "ssh-rsa BBBB two@y"))
    image = nocloud_iso(config, "5f0c4f6e-3d7a-4b8e-9a0b-1c2d3e4f5a6b")
    files = read_nocloud_iso(image)
    assert files["volume-label"] == "cidata"
    assert files["user-data"].startswith("#cloud-config\n")
    user_data = json.loads(files["user-data"].split("\n", 1)[1])  # JSON is YAML: cloud-init reads it as such
    assert user_data["hostname"] == "gpu-box-1"
    (root,) = user_data["users"]
    assert root == {
        "name": "root",
        "hashed_passwd": "$6$salt$hash",
        "lock_passwd": False,
        "ssh_authorized_keys": ["ssh-ed25519 AAAA one@x", "ssh-rsa BBBB two@y"],
    }
    meta = json.loads(files["meta-data"])
    assert meta == {"instance-id": "5f0c4f6e-3d7a-4b8e-9a0b-1c2d3e4f5a6b", "local-hostname": "gpu-box-1"}
    path = tmp_path / "seed.iso"
    path.write_bytes(image)
    probe = subprocess.run(["blkid", "-o", "export", str(path)], capture_output=True, text=True, check=True)
    assert "LABEL=cidata" in probe.stdout and "TYPE=iso9660" in probe.stdout


def test_seed_without_password_keeps_password_login_off():
    files = read_nocloud_iso(nocloud_iso(CloudInit("box", None, ("ssh-ed25519 AAAA k",)), "id-1"))
    user_data = json.loads(files["user-data"].split("\n", 1)[1])
    assert user_data["ssh_pwauth"] is False
    assert "hashed_passwd" not in user_data["users"][0]
