"""The seed's network-config and user-data as cloud-init itself reads them: Debian's cloud-init
(scripts/install-system-deps.sh) parses the network config into its network state and renders
it for ifupdown, and validates the user-data against its cloud-config schema."""

from __future__ import annotations

import json
import subprocess

from gpucloud.domain.guest import CloudInit, GuestNetwork
from gpucloud.hypervisor.cloudinit import nocloud_iso, read_nocloud_iso

NETWORK = GuestNetwork(mac="52:54:00:12:34:56", ipv4="203.0.113.7", ipv4_prefix=24, ipv4_gateway="203.0.113.1",
                       ipv6="2600:3c03::5054:ff:fe12:3456", ipv6_prefix=64, ipv6_gateway="2600:3c03::1",
                       resolvers=("66.228.42.5", "2600:3c03::5"))
SYSTEM_PYTHON = "/usr/bin/python3"  # where Debian's cloud-init lives
RENDER = """
import json, sys
from cloudinit.net import eni
from cloudinit.net.network_state import parse_net_config_data
state = parse_net_config_data(json.load(sys.stdin), skip_broken=False)
print(json.dumps({"interfaces": list(state.iter_interfaces()), "dns": state.dns_nameservers}))
print(eni.Renderer()._render_interfaces(state))
"""


def seed(config: CloudInit) -> dict[str, str]:
    return read_nocloud_iso(nocloud_iso(config, "5f0c4f6e-3d7a-4b8e-9a0b-1c2d3e4f5a6b"))


def test_network_config_is_what_cloud_init_renders_into_a_static_interface():
    files = seed(CloudInit("gpu-box", "$6$salt$hash", network=NETWORK))
    done = subprocess.run([SYSTEM_PYTHON, "-c", RENDER], input=files["network-config"], capture_output=True,
                          text=True, check=True)
    parsed, rendered = done.stdout.split("\n", 1)
    (interface,) = json.loads(parsed)["interfaces"]
    assert interface["mac_address"] == NETWORK.mac and interface["name"] == "eth0"
    subnets = {(s["address"], s.get("prefix"), s.get("gateway")) for s in interface["subnets"]}
    assert subnets == {("203.0.113.7", 24, "203.0.113.1"), ("2600:3c03::5054:ff:fe12:3456", 64, "2600:3c03::1")}
    assert json.loads(parsed)["dns"] == list(NETWORK.resolvers)
    assert "iface eth0 inet static" in rendered and "gateway 203.0.113.1" in rendered
    assert "iface eth0 inet6 static" in rendered and "gateway 2600:3c03::1" in rendered


def test_user_data_passes_cloud_inits_schema(tmp_path):
    files = seed(CloudInit("gpu-box", "$6$salt$hash", ("ssh-ed25519 AAAA k",), network=NETWORK))
    path = tmp_path / "user-data"
    path.write_text(files["user-data"])
    check = subprocess.run(["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True)
    assert check.returncode == 0 and "Valid cloud-config" in check.stdout, check.stdout + check.stderr
    broken = tmp_path / "broken"
    broken.write_text(files["user-data"].replace('"preserve_hostname": false', '"preserve_hostname": "maybe"'))
    refused = subprocess.run(["cloud-init", "schema", "--config-file", str(broken)], capture_output=True, text=True)
    assert refused.returncode != 0  # the check does check


def test_a_seed_without_addresses_has_no_network_config():
    assert "network-config" not in seed(CloudInit("box", "$6$salt$hash"))
