"""The whole pipeline for real, not on simulated hosts: register this machine's libvirtd,
create a standard instance with the unmodified linode-cli, see QEMU run it, delete it and
see the domain go. (This machine has no GPU and two cores, hence a nanode under TCG.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import libvirt
import pytest

from gpucloud.hypervisor.cloudinit import read_nocloud_iso
from tests.live import run_cli, start_server

pytestmark = pytest.mark.libvirtd

SMALL_HOST = {  # the whole machine is two threads: keep none back for the host
    "GPUCLOUD_RESERVED_CORES_PER_NODE": "0",
    "GPUCLOUD_RESERVED_MEMORY_MIB_PER_NODE": "512",
    "GPUCLOUD_DRIVER_TIMEOUT_SECONDS": "60",
    "GPUCLOUD_WORKER_POLL_SECONDS": "0.1",
}
OURS = re.compile(r"^gpucloud-\d+$")


def _clear_leftovers(uri: str) -> None:
    """This libvirtd belongs to the test suite: guests a crashed earlier run left behind go."""
    conn = libvirt.open(uri)
    try:
        for dom in conn.listAllDomains():
            if OURS.match(dom.name()):
                if dom.isActive():
                    dom.destroy()
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
    finally:
        conn.close()


def _domain_state(uri: str, name: str) -> str | None:
    conn = libvirt.open(uri)
    try:
        names = {d.name(): d for d in conn.listAllDomains()}
        if name not in names:
            return None
        return "running" if names[name].isActive() else "shut off"
    finally:
        conn.close()


def _the_seed_on_the_host_names_the_domains_interface(uri: str, name: str, instance: dict, tmp_path: Path) -> None:
    """The seed volume libvirtd holds is what `gpucloud instance seed` shows, and its
    network-config gives the domain's own interface (by MAC) the address the API reports."""
    conn = libvirt.open(uri)
    try:
        mac = re.search(r"<mac address='([0-9a-f:]+)'/>", conn.lookupByName(name).XMLDesc(0)).group(1)
    finally:
        conn.close()
    shown = json.loads(run_cli(tmp_path, "instance", "seed", str(instance["id"]), "--json", env=SMALL_HOST).stdout)
    network = json.loads(shown["network-config"])["ethernets"]["eth0"]
    assert network["match"]["macaddress"] == mac and network["addresses"][0].split("/")[0] == instance["ipv4"][0]
    iso = tmp_path / "seed.iso"
    subprocess.run(["virsh", "-c", uri, "vol-download", "--pool", "gpucloud", f"{name}-seed.iso", str(iso)],
                   check=True, capture_output=True, timeout=60)
    assert read_nocloud_iso(iso.read_bytes())["network-config"] == shown["network-config"]


def _linode_cli(server, token: str, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LINODE_CLI_TOKEN": token, "LINODE_CLI_API_HOST": f"127.0.0.1:{server.port}",
           "LINODE_CLI_API_SCHEME": "http", "LINODE_CLI_CONFIG": str(home / "linode-cli"), "HOME": str(home),
           "LINODE_CLI_SUPPRESS_VERSION_WARNING": "1"}
    cli = Path(sys.executable).with_name("linode-cli")
    return subprocess.run([str(cli), *args, "--suppress-warnings"], capture_output=True, text=True, env=env,
                          timeout=60)


def _until(check, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def test_linode_cli_creates_a_real_qemu_guest_and_deletes_it(libvirtd, tmp_path):
    uri = libvirtd
    _clear_leftovers(uri)
    added = run_cli(tmp_path, "host", "add", "--uri", uri, "--region", "us-east", "--name", "this-machine",
                    "--domain-type", "qemu", "--nic", "user", env=SMALL_HOST).stdout
    assert "registered host this-machine" in added
    run_cli(tmp_path, "account", "create", "e2e@example.com", env=SMALL_HOST)
    token = run_cli(tmp_path, "token", "create", "--account", "e2e@example.com", env=SMALL_HOST).stdout.strip()

    server = start_server(tmp_path, env=SMALL_HOST)
    try:
        home = tmp_path / "home"
        home.mkdir()
        created = _linode_cli(server, token, home, "linodes", "create", "--type", "g6-nanode-1", "--region",
                              "us-east", "--image", "linode/debian12", "--root_pass", "aComplex@Password123",
                              "--label", "e2e-nanode", "--json")
        assert created.returncode == 0, created.stderr
        (instance,) = json.loads(created.stdout)
        name = f"gpucloud-{instance['id']}"

        def status() -> str:
            view = _linode_cli(server, token, home, "linodes", "view", str(instance["id"]), "--json")
            return json.loads(view.stdout)[0]["status"] if view.returncode == 0 else f"error {view.stderr}"

        _until(lambda: status() == "running", "the instance to be reported running")
        assert _domain_state(uri, name) == "running"  # QEMU really runs it
        _the_seed_on_the_host_names_the_domains_interface(uri, name, instance, tmp_path)

        deleted = _linode_cli(server, token, home, "linodes", "delete", str(instance["id"]))
        assert deleted.returncode == 0, deleted.stderr
        _until(lambda: _linode_cli(server, token, home, "linodes", "view", str(instance["id"])).returncode == 2,
               "the instance to be gone")
        assert _domain_state(uri, name) is None  # and the domain with it
    finally:
        server.stop()
        _clear_leftovers(uri)
