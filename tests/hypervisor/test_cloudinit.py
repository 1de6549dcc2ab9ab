"""The NoCloud seed: an ISO cloud-init recognises (label `cidata`) holding our user-data and meta-data."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess

from gpucloud.domain.guest import CloudInit
from gpucloud.hypervisor.cloudinit import cloud_config_problem, nocloud_iso, read_nocloud_iso, seed_user_data, user_data


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


CUSTOMER_CONFIG = b"#cloud-config\npackages: [nvidia-driver]\nruncmd:\n  - [nvidia-smi]\n"
READ_PARTS = """
import sys
from cloudinit import helpers, user_data
message = user_data.UserDataProcessor(helpers.Paths({})).process(sys.stdin.buffer.read())
for part in message.walk():
    if part.get_content_maintype() != "multipart":
        print(part.get_content_type())
"""


def test_customer_user_data_is_a_second_part_cloud_init_reads():
    """Debian's cloud-init (its own Python) splits the seed's user-data into our cloud-config and
    the customer's; each passes its schema validator."""
    config = CloudInit("gpu-box-1", "$6$salt$hash", ("ssh-ed25519 AAAA one@x",), CUSTOMER_CONFIG)
    seed = seed_user_data(config)
    assert seed == seed_user_data(config)  # the same seed for the same data
    done = subprocess.run(["/usr/bin/python3", "-c", READ_PARTS], input=seed.encode(), capture_output=True,
                          check=True, timeout=60)
    assert done.stdout.decode().split() == ["text/cloud-config", "text/cloud-config"]
    assert cloud_config_problem(user_data(config).encode()) is None
    assert cloud_config_problem(CUSTOMER_CONFIG) is None
    assert cloud_config_problem(b"#cloud-config\nusers: 5\n") is not None


def test_binary_user_data_travels_base64_encoded():
    gz = gzip.compress(CUSTOMER_CONFIG)
    seed = seed_user_data(CloudInit("box", None, ("ssh-ed25519 AAAA k",), gz))
    assert "Content-Type: application/octet-stream" in seed and base64.b64encode(gz).decode()[:40] in seed
