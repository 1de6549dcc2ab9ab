"""The libvirt driver against real libvirt: the test driver (in-process, every run) and a real
libvirtd with QEMU in software emulation (`@pytest.mark.libvirtd`, started by scripts/libvirtd-up.sh).
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import libvirt
import libvirt_qemu
import pytest
from lxml import etree

from gpucloud.hypervisor.base import (
    RUNNING,
    SHUTOFF,
    DriverError,
    DriverTimeout,
    HostUnreachable,
    PermanentDriverError,
)
from gpucloud.hypervisor.cloudinit import read_nocloud_iso
from gpucloud.hypervisor.discovery import parse_node_devices
from gpucloud.hypervisor.libvirt_driver import LibvirtDriver

CI_POOL = "gpucloud-ci"
CI_POOL_PATH = "/var/lib/libvirt/images/gpucloud-ci"


def volumes(conn: libvirt.virConnect, pool: str) -> set[str]:
    return set(conn.storagePoolLookupByName(pool).listVolumes())


def states(driver: LibvirtDriver) -> dict[str, str]:
    return {d.name: d.state for d in driver.list_domains()}


# -- libvirt's test driver --------------------------------------------------------------------


def test_gpu_domain_lifecycle_on_the_test_driver(test_host_uri, two_gpu_spec):
    driver = LibvirtDriver(test_host_uri, timeout_s=10)
    spec = two_gpu_spec()
    driver.define(spec)
    conn = driver._conn  # the driver's own connection: the test driver keeps state per connection
    assert states(driver)[spec.name] == SHUTOFF
    pool = conn.storagePoolLookupByName("gpucloud")
    disk = etree.fromstring(pool.storageVolLookupByName(f"{spec.name}-disk.qcow2").XMLDesc(0))
    assert disk.findtext("backingStore/path") == "/var/lib/libvirt/images/gpucloud/linode-debian12.qcow2"
    assert disk.find("target/format").get("type") == "qcow2"
    assert int(disk.findtext("capacity")) == 20480 * 1024 * 1024
    assert f"{spec.name}-seed.iso" in pool.listVolumes()

    driver.start(spec.name)
    driver.start(spec.name)  # already running: left alone
    assert states(driver)[spec.name] == RUNNING
    live = etree.fromstring(conn.lookupByName(spec.name).XMLDesc(0))
    sources = sorted(
        (int(a.get("bus"), 16), int(a.get("function"), 16)) for a in live.iterfind("devices/hostdev/source/address")
    )
    assert sources == [(0x41, 0), (0xC1, 0), (0xC1, 1)]
    assert [m.get("nodeset") for m in live.iterfind("numatune/memnode")] == ["0", "1"]

    driver.destroy(spec.name)
    driver.destroy(spec.name)  # already off: fine
    assert states(driver)[spec.name] == SHUTOFF
    driver.start(spec.name)
    assert driver.shutdown(spec.name, timeout_s=5) is True  # the test driver powers off at once
    driver.undefine(spec.name)
    driver.undefine(spec.name)  # already gone: fine
    assert spec.name not in states(driver)
    assert volumes(conn, "gpucloud") == {"linode-debian12.qcow2"}
    driver.close()


def test_redefining_replaces_the_definition_and_keeps_the_disk(test_host_uri, two_gpu_spec):
    driver = LibvirtDriver(test_host_uri)
    spec = two_gpu_spec()
    driver.define(spec)
    disk_key = driver._conn.storagePoolLookupByName("gpucloud").storageVolLookupByName(f"{spec.name}-disk.qcow2").key()
    driver.define(replace(spec, title="renamed"))
    domain = driver._conn.lookupByName(spec.name)
    assert etree.fromstring(domain.XMLDesc(0)).findtext("title") == "renamed"
    assert list(states(driver)).count(spec.name) == 1
    assert driver._conn.storagePoolLookupByName("gpucloud").storageVolLookupByName(f"{spec.name}-disk.qcow2").key() == disk_key


def test_reimage_wipes_the_disk_and_writes_it_from_the_new_image(test_host_uri, two_gpu_spec, caplog):
    driver = LibvirtDriver(test_host_uri)
    spec = two_gpu_spec()
    driver.define(spec)

    def backing() -> str | None:
        pool = driver._conn.storagePoolLookupByName("gpucloud")
        return etree.fromstring(pool.storageVolLookupByName(f"{spec.name}-disk.qcow2").XMLDesc(0)).findtext(
            "backingStore/path")

    assert backing().endswith("linode-debian12.qcow2")
    with caplog.at_level(logging.WARNING):
        driver.reimage(replace(spec, image="linode/ubuntu24.04"))  # no base image in this pool: an empty disk
    assert backing() is None and "no base image for linode/ubuntu24.04" in caplog.text
    driver.reimage(spec)
    assert backing().endswith("linode-debian12.qcow2")
    driver.start(spec.name)
    with pytest.raises(DriverError, match="the domain is running"):
        driver.reimage(spec)
    assert backing().endswith("linode-debian12.qcow2")


def test_rescue_boots_the_rescue_image_first_with_the_disk_beside_it(test_host_uri, two_gpu_spec):
    driver, spec = LibvirtDriver(test_host_uri), two_gpu_spec()
    xml = etree.fromstring(driver.domain_xml(replace(spec, rescue=True)))
    boots = {d.find("source").get("volume"): d.find("boot").get("order") for d in xml.iterfind("devices/disk")
             if d.find("boot") is not None}
    assert boots == {"gpucloud-rescue.iso": "1", f"{spec.name}-disk.qcow2": "2"}
    normal = etree.fromstring(driver.domain_xml(spec))
    assert [d.find("source").get("volume") for d in normal.iterfind("devices/disk")] == [
        f"{spec.name}-disk.qcow2", f"{spec.name}-seed.iso"]


def test_a_refused_define_leaves_no_volumes_behind(test_host_uri, two_gpu_spec):
    driver = LibvirtDriver(test_host_uri)
    first = two_gpu_spec()
    driver.define(first)
    before = volumes(driver._conn, "gpucloud")
    clash = two_gpu_spec(uuid=first.uuid)  # libvirt refuses a second name for one UUID
    with pytest.raises(DriverError) as caught:
        driver.define(clash)
    assert "already" in str(caught.value) and clash.name in str(caught.value)
    assert volumes(driver._conn, "gpucloud") == before
    assert clash.name not in states(driver)


def test_an_impossible_spec_is_permanent_and_touches_nothing(test_host_uri, two_gpu_spec):
    driver = LibvirtDriver(test_host_uri)
    spec = two_gpu_spec()
    bad = replace(spec, gpus=spec.gpus[:1] + (spec.gpus[0],))
    with pytest.raises(PermanentDriverError, match="passed through twice") as caught:
        driver.define(bad)
    assert caught.value.retryable is False
    assert driver.list_domains() == []
    assert volumes(driver._conn, "gpucloud") == {"linode-debian12.qcow2"}


def test_without_a_base_image_the_disk_is_an_empty_qcow2(test_host_uri, two_gpu_spec, caplog):
    driver = LibvirtDriver(test_host_uri)
    spec = two_gpu_spec(image="linode/arch", disk_mib=4096)
    with caplog.at_level(logging.WARNING, logger="gpucloud.hypervisor.libvirt_driver"):
        driver.define(spec)
    disk = etree.fromstring(
        driver._conn.storagePoolLookupByName("gpucloud").storageVolLookupByName(f"{spec.name}-disk.qcow2").XMLDesc(0)
    )
    assert disk.find("backingStore/path") is None
    assert int(disk.findtext("capacity")) == 4096 * 1024 * 1024
    assert any("no base image for linode/arch" in r.getMessage() for r in caplog.records)


def test_missing_domains_are_fine_except_for_start(test_host_uri):
    driver = LibvirtDriver(test_host_uri)
    driver.destroy("gpucloud-404")
    driver.undefine("gpucloud-404")
    assert driver.shutdown("gpucloud-404", timeout_s=1) is True
    with pytest.raises(PermanentDriverError, match="start gpucloud-404 .*no such domain"):
        driver.start("gpucloud-404")


def test_the_storage_pool_is_created_when_missing(two_gpu_spec):
    driver = LibvirtDriver("test:///default", pool="gpucloud-new", pool_path="/srv/pool")
    spec = two_gpu_spec(image=None, disk_mib=1024)
    driver.define(spec)
    pool = driver._conn.storagePoolLookupByName("gpucloud-new")
    assert pool.isActive() and pool.autostart()
    assert etree.fromstring(pool.XMLDesc(0)).findtext("target/path") == "/srv/pool"
    assert set(pool.listVolumes()) == {f"{spec.name}-disk.qcow2", f"{spec.name}-seed.iso"}
    driver.undefine(spec.name)
    assert pool.listVolumes() == []


def test_next_call_reconnects_after_the_connection_is_closed_under_the_driver(test_host_uri):
    driver = LibvirtDriver(test_host_uri)
    assert driver.list_domains() == []
    old = driver._conn
    old.close()
    assert driver.list_domains() == []
    assert driver._conn is not old


def test_discovery_reads_pci_node_devices(test_host_uri):
    capabilities, devices = LibvirtDriver(test_host_uri).describe_host()
    assert etree.fromstring(capabilities.encode()).tag == "capabilities"
    gpus, others = parse_node_devices(devices)
    by_address = {g.address: g for g in gpus}
    assert set(by_address) == {"0000:41:00.0", "0000:c1:00.0"}
    assert (by_address["0000:41:00.0"].numa_node, by_address["0000:41:00.0"].iommu_group) == (1, 46)
    assert by_address["0000:c1:00.0"].passthrough_functions == ("0000:c1:00.0", "0000:c1:00.1")
    assert "0000:21:00.0" in {f.address for f in others}


def test_discovery_takes_numa_cells_from_capabilities():
    topology = LibvirtDriver("test:///default").discover()  # the only test host with NUMA cells
    assert [n.index for n in topology.nodes] == [0, 1]
    assert topology.node(0).cpu_ids == tuple(range(8)) and topology.node(1).cpu_ids == tuple(range(8, 16))


def test_discovery_of_a_host_without_numa_cells_is_refused_with_the_reason(test_host_uri):
    with pytest.raises(PermanentDriverError, match="no NUMA cells"):
        LibvirtDriver(test_host_uri).discover()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_host_that_refuses_the_connection_is_unreachable():
    driver = LibvirtDriver(f"qemu+tcp://127.0.0.1:{_free_port()}/system", timeout_s=10)
    with pytest.raises(HostUnreachable, match="cannot reach .*Connection refused"):
        driver.list_domains()


def test_a_host_that_never_answers_is_unreachable_after_the_timeout():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts the TCP connection, then says nothing
    port = listener.getsockname()[1]
    try:
        driver = LibvirtDriver(f"qemu+tcp://127.0.0.1:{port}/system", timeout_s=1.0)
        started = time.monotonic()
        with pytest.raises(HostUnreachable, match="no answer .* within 1 s"):
            driver.list_domains()
        assert 0.9 < time.monotonic() - started < 5
    finally:
        listener.close()


# -- a real libvirtd with QEMU (TCG) ----------------------------------------------------------


@pytest.fixture
def system(libvirtd):
    conn = libvirt.open(libvirtd)
    yield conn
    conn.close()


@pytest.fixture
def qemu_driver(libvirtd):
    driver = LibvirtDriver(libvirtd, timeout_s=30, pool=CI_POOL, pool_path=CI_POOL_PATH, nic="user", stand_in_gpus=True)
    yield driver
    driver.close()


def _base_image(name: str) -> None:
    """What an operator does: drop a base image into the pool directory."""
    Path(CI_POOL_PATH).mkdir(parents=True, exist_ok=True)
    path = Path(CI_POOL_PATH) / name
    if not path.exists():
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "32M"], check=True)


def _qmp(domain: libvirt.virDomain, command: str, **arguments: object) -> object:
    reply = libvirt_qemu.qemuMonitorCommand(domain, json.dumps({"execute": command, "arguments": arguments}), 0)
    return json.loads(reply)["return"]


@pytest.mark.libvirtd
def test_a_pinned_two_cell_guest_boots_under_qemu_as_the_spec_says(qemu_driver, system, small_host_spec, cleanup_domains):
    _base_image("linode-ci-base.qcow2")
    spec = small_host_spec(image="linode/ci-base")
    cleanup_domains.append((qemu_driver, spec.name))
    qemu_driver.define(spec)
    qemu_driver.start(spec.name)
    assert states(qemu_driver)[spec.name] == RUNNING
    domain = system.lookupByName(spec.name)

    # pinning and memory policy, as libvirt applied them to the QEMU process
    assert [tuple(p) for p in domain.vcpuPinInfo()] == [(True, False), (False, True)]
    assert tuple(domain.emulatorPinInfo()) == (True, True)
    assert domain.numaParameters() == {"numa_mode": libvirt.VIR_DOMAIN_NUMATUNE_MEM_STRICT, "numa_nodeset": "0"}

    # the guest NUMA layout, as QEMU itself reports it
    numa = libvirt_qemu.qemuMonitorCommand(domain, "info numa", libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP)
    assert numa.splitlines()[0] == "2 nodes"
    assert re.search(r"node 0 cpus: 0\s", numa) and re.search(r"node 1 cpus: 1\s", numa)
    assert re.search(r"node 0 size: 128 MB", numa) and re.search(r"node 1 size: 128 MB", numa)

    # each stand-in GPU behind the expander of its cell: follow the live XML, then ask QEMU
    live = etree.fromstring(domain.XMLDesc(0).encode())
    controllers = {int(c.get("index")): c for c in live.iterfind("devices/controller[@type='pci']")}
    rngs = live.findall("devices/rng")
    assert len(rngs) == 3
    cells_of_rngs = []
    for rng in rngs:
        port = controllers[int(rng.find("address").get("bus"), 16)]
        assert port.get("model") == "pcie-root-port"
        expander = controllers[int(port.find("address").get("bus"), 16)]
        assert expander.get("model") == "pcie-expander-bus"
        assert _qmp(domain, "qom-get", path=f"/machine/peripheral/{expander.find('alias').get('name')}",
                    property="numa_node") == int(expander.findtext("target/node"))  # fmt: skip
        cells_of_rngs.append(int(expander.findtext("target/node")))
    assert sorted(cells_of_rngs) == [0, 0, 1]  # the two functions of GPU 0 on cell 0, GPU 1 on cell 1

    # QEMU's command line: memory bound to host node 0 per guest cell, pxb with numa_node
    log_text = Path(f"/var/log/libvirt/qemu/{spec.name}.log").read_text()
    command_line = log_text[log_text.rindex("qemu-system-x86_64") :]
    assert '"host-nodes":[0],"policy":"bind"' in command_line
    assert "-numa node,nodeid=0,cpus=0,memdev=ram-node0" in command_line
    assert "-numa node,nodeid=1,cpus=1,memdev=ram-node1" in command_line
    assert re.search(r'"driver":"pxb-pcie","bus_nr":\d+,"id":"pci\.1","numa_node":0', command_line)
    assert re.search(r'"driver":"pxb-pcie","bus_nr":\d+,"id":"pci\.2","numa_node":1', command_line)

    # storage: an overlay on the base image, and a seed cloud-init recognises
    pool = system.storagePoolLookupByName(CI_POOL)
    disk = pool.storageVolLookupByName(f"{spec.name}-disk.qcow2")
    info = subprocess.run(["qemu-img", "info", "-U", "--output=json", disk.path()], capture_output=True, text=True, check=True)
    assert f'"backing-filename": "{CI_POOL_PATH}/linode-ci-base.qcow2"' in info.stdout
    seed = pool.storageVolLookupByName(f"{spec.name}-seed.iso")
    stream, chunks = system.newStream(0), []
    seed.download(stream, 0, 0, 0)
    stream.recvAll(lambda _s, data, acc: acc.append(data), chunks)
    stream.finish()
    files = read_nocloud_iso(b"".join(chunks))
    assert files["volume-label"] == "cidata" and f'"hostname": "{spec.name}"' in files["user-data"]
    assert "ssh-ed25519 AAAAC3Nz test@ci" in files["user-data"]

    # no guest OS answers ACPI, so shutdown forces it off and says so
    assert qemu_driver.shutdown(spec.name, timeout_s=1) is False
    assert states(qemu_driver)[spec.name] == SHUTOFF
    qemu_driver.undefine(spec.name)
    assert spec.name not in states(qemu_driver)
    assert not volumes(system, CI_POOL) & {f"{spec.name}-disk.qcow2", f"{spec.name}-seed.iso"}
    assert "linode-ci-base.qcow2" in volumes(system, CI_POOL)  # base images stay


@pytest.mark.libvirtd
def test_real_hostdevs_are_refused_at_start_on_a_host_without_vfio(libvirtd, small_host_spec, cleanup_domains):
    driver = LibvirtDriver(libvirtd, pool=CI_POOL, pool_path=CI_POOL_PATH, nic="user")  # no stand-ins
    spec = small_host_spec(cloud_init=None)  # and no image: an empty qcow2 disk
    cleanup_domains.append((driver, spec.name))
    driver.define(spec)
    with pytest.raises(PermanentDriverError, match="VFIO"):
        driver.start(spec.name)
    assert states(driver)[spec.name] == SHUTOFF
    with libvirt.open(libvirtd) as conn:
        disk = conn.storagePoolLookupByName(CI_POOL).storageVolLookupByName(f"{spec.name}-disk.qcow2")
        assert etree.fromstring(disk.XMLDesc(0)).find("target/format").get("type") == "qcow2"
        assert disk.info()[1] == 64 * 1024 * 1024
    driver.undefine(spec.name)
    assert spec.name not in states(driver)


@pytest.mark.libvirtd
def test_domxml_to_native_gives_a_vfio_pci_device_per_gpu_function(libvirtd, small_host_spec, tmp_path):
    driver = LibvirtDriver(libvirtd, nic="user")
    spec = small_host_spec(disk_mib=0, cloud_init=None)
    xml = tmp_path / "domain.xml"
    xml.write_text(driver.domain_xml(spec))
    argv = subprocess.run(
        ["virsh", "-c", libvirtd, "domxml-to-native", "qemu-argv", str(xml)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert argv.returncode == 0, argv.stderr
    vfio = re.findall(r'\{"driver":"vfio-pci","host":"([0-9a-f:.]+)","id":"hostdev\d+","bus":"(pci\.\d+)",'
                      r'(?:"multifunction":(?:true|"on"),)?"addr":"0x0(?:\.0x(\d))?"', argv.stdout)  # fmt: skip
    hosts = {host: (bus, int(function or 0)) for host, bus, function in vfio}
    assert set(hosts) == {"0000:41:00.0", "0000:41:00.1", "0000:c1:00.0"}
    assert hosts["0000:41:00.0"][0] == hosts["0000:41:00.1"][0] != hosts["0000:c1:00.0"][0]
    assert (hosts["0000:41:00.0"][1], hosts["0000:41:00.1"][1]) == (0, 1)


def _our_clients() -> list[str]:
    listing = subprocess.run(["virt-admin", "srv-clients-list", "libvirtd"], capture_output=True, text=True, check=True)
    ids = [line.split()[0] for line in listing.stdout.splitlines()[2:] if line.strip()]
    ours = []
    for client in ids:
        info = subprocess.run(["virt-admin", "client-info", "libvirtd", client], capture_output=True, text=True)
        if re.search(rf"unix_process_id\s*:\s*{os.getpid()}\b", info.stdout):
            ours.append(client)
    return ours


@pytest.mark.libvirtd
def test_the_driver_reconnects_when_libvirtd_drops_its_connection(qemu_driver):
    assert isinstance(qemu_driver.list_domains(), list)
    clients = _our_clients()
    assert clients, "the driver's connection is not among libvirtd's clients"
    for client in clients:
        subprocess.run(["virt-admin", "client-disconnect", "libvirtd", client], check=True, capture_output=True)
    assert isinstance(qemu_driver.list_domains(), list)  # a fresh connection answers
    assert _our_clients() and set(_our_clients()).isdisjoint(clients)


@pytest.mark.libvirtd
def test_a_hung_libvirtd_becomes_a_timeout_and_the_driver_recovers(libvirtd):
    driver = LibvirtDriver(libvirtd, timeout_s=1.0)
    driver.list_domains()
    pid = int(Path("/run/libvirtd.pid").read_text())
    os.kill(pid, signal.SIGSTOP)
    resumer = threading.Timer(3.0, os.kill, (pid, signal.SIGCONT))
    try:
        resumer.start()
        started = time.monotonic()
        with pytest.raises(DriverTimeout, match="list domains on qemu:///system did not finish within 1 s"):
            driver.list_domains()
        assert time.monotonic() - started < 2.5
    finally:
        resumer.join()
        os.kill(pid, signal.SIGCONT)
    driver.timeout_s = 30
    assert isinstance(driver.list_domains(), list)
    driver.close()
