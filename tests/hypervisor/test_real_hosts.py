"""Hosts as they really are (issue 18), from the five recordings of tests/fixtures/real_hosts.py:
each as a sysfs tree and as libvirt XML. `host inspect` gives the right verdict, both forms give
the same topology, `host add` registers them, and `capacity` sells what a person would expect."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpucloud.cli import cli
from gpucloud.domain.topology import FROM_LOCAL_CPULIST, UNKNOWN_NUMA_NODE, HostTopology
from gpucloud.hypervisor.discovery import load_fixture_dir
from gpucloud.hypervisor.preflight import FAIL, INFO, PASS, WARN, format_report, host_ready, run_preflight
from gpucloud.hypervisor.sysfs import topology_from_sysfs
from gpucloud.services.hosts import apply_gpu_nodes

from .conftest import FIXTURES

INTEL, EPYC, POWER9, GRACE, HIDDEN = (
    "intel-2s-4gpu-matrox", "epyc-nps4-8gpu-aspeed", "power9-6gpu-memory-nodes", "grace-hopper-1gpu",
    "intel-2s-4gpu-hidden-locality",
)  # fmt: skip
HOSTS = (INTEL, EPYC, POWER9, GRACE, HIDDEN)
REGION = {INTEL: "us-east", EPYC: "ap-west", POWER9: "ap-south", GRACE: "eu-central", HIDDEN: "eu-central"}
HIDDEN_NODES = {"0000:3b:00.0": 0, "0000:5e:00.0": 0, "0000:86:00.0": 1, "0000:af:00.0": 1}


def sysfs(name: str) -> Path:
    return FIXTURES / "sysfs" / name


def libvirt(name: str) -> Path:
    return FIXTURES / "libvirt" / name


def inspect(name: str) -> dict:
    return {c.name: c for c in run_preflight(sysfs(name))}


def not_passing(checks: dict) -> dict[str, str]:
    return {name: c.status for name, c in checks.items() if c.status != PASS}


def gpu_node_options(checks: dict) -> dict[str, int]:
    """The --gpu-node values `host inspect` tells the operator to give."""
    found = (re.search(r"--gpu-node (\S+)=(\d+)", c.fix) for c in checks.values())
    return {m.group(1): int(m.group(2)) for m in found if m}


# --- host inspect ---------------------------------------------------------------------------


def test_intel_host_with_a_bmc_matrox_is_ready_and_lists_the_chip():
    checks = inspect(INTEL)
    assert not_passing(checks) == {"display 0000:09:03.0": INFO}
    detail = checks["display 0000:09:03.0"].detail
    assert "[102b:0532]" in detail and "the boot VGA" in detail and "Matrox" in detail
    assert checks["NUMA"].detail == "2 NUMA nodes: node0 20 CPUs, node1 20 CPUs"
    assert [checks[f"GPU {a} NUMA node"].detail for a in HIDDEN_NODES] == ["node 0", "node 0", "node 1", "node 1"]
    report = format_report(list(checks.values()))
    assert report.endswith("READY for GPU passthrough (0 warning(s))") and "INFO  display 0000:09:03.0" in report


def test_epyc_nps4_host_with_an_aspeed_bmc_is_ready():
    checks = inspect(EPYC)
    assert not_passing(checks) == {"display 0000:c3:00.0": INFO}
    assert "ASPEED" in checks["display 0000:c3:00.0"].detail
    assert checks["NUMA"].detail.startswith("4 NUMA nodes: node0 20 CPUs")
    assert sum(name.endswith("NUMA node") for name in checks) == 8


def test_power9_host_counts_its_memory_only_nodes_apart():
    checks = inspect(POWER9)
    assert not_passing(checks) == {}
    assert checks["NUMA"].detail.startswith("2 NUMA nodes (+6 memory-only): node0 64 CPUs, node8 64 CPUs; memory-only")
    assert "node255 16 GiB" in checks["NUMA"].detail
    assert [n for n in checks if n.startswith("1 GiB hugepages")] == ["1 GiB hugepages node0", "1 GiB hugepages node8"]


def test_grace_hopper_host_is_one_cpu_node_and_one_memory_only_node():
    checks = inspect(GRACE)
    assert not_passing(checks) == {}
    assert checks["NUMA"].detail == "1 NUMA node (+1 memory-only): node0 32 CPUs; memory-only (no CPUs; never a " \
                                    "guest's RAM): node1 96 GiB"


def test_hidden_locality_is_taken_from_local_cpulist_and_said():
    checks = inspect(HIDDEN)
    assert not_passing(checks) == {f"GPU {a} NUMA node": WARN for a in HIDDEN_NODES}
    check = checks["GPU 0000:86:00.0 NUMA node"]
    assert check.detail == "node 1, from local_cpulist 10-19,30-39; the firmware reports -1"
    assert "--gpu-node 0000:86:00.0=1" in check.fix
    assert gpu_node_options(checks) == HIDDEN_NODES
    assert host_ready(list(checks.values()))


def test_a_local_cpulist_naming_every_cpu_leaves_the_node_unknown(tmp_path):
    from tests.fixtures import real_hosts

    spec = real_hosts.SPECS[HIDDEN]
    everything = real_hosts.cpulist(list(range(40)))
    devices = tuple(replace(d, local_cpulist=everything) if d.address == "0000:86:00.0" else d for d in spec.devices)
    real_hosts.make_trees.write(tmp_path / "host", real_hosts.sysfs_host(replace(spec, devices=devices)))
    checks = {c.name: c for c in run_preflight(tmp_path / "host")}
    assert checks["GPU 0000:86:00.0 NUMA node"].status == FAIL
    assert checks["GPU 0000:86:00.0 NUMA node"].detail == (
        "unknown (-1) on a host with 2 NUMA nodes (local_cpulist names every CPU)"
    )
    gpu = {g.address: g for g in topology_from_sysfs(tmp_path / "host").gpus}["0000:86:00.0"]
    assert gpu.numa_node == UNKNOWN_NUMA_NODE


# --- both forms, one topology ---------------------------------------------------------------


def _without_names(topology: HostTopology) -> HostTopology:
    """sysfs has no product names (they come from pci.ids); everything else must agree."""
    gpus = tuple(
        replace(g, product="", companions=tuple(replace(c, description="") for c in g.companions))
        for g in topology.gpus
    )
    return replace(topology, gpus=gpus, cpu_model="")


@pytest.mark.parametrize("name", HOSTS)
def test_the_sysfs_tree_and_the_libvirt_xml_give_the_same_topology(name):
    from_sysfs = topology_from_sysfs(sysfs(name))
    from_libvirt = load_fixture_dir(libvirt(name))
    if name == HIDDEN:  # libvirt shows the firmware's -1; the operator gives what host inspect found
        assert {g.numa_node for g in from_libvirt.gpus} == {UNKNOWN_NUMA_NODE}
        assert {g.numa_source for g in from_sysfs.gpus} == {FROM_LOCAL_CPULIST}
        from_libvirt = apply_gpu_nodes(from_libvirt, gpu_node_options(inspect(name)))
    assert _without_names(from_sysfs) == _without_names(from_libvirt)
    assert from_sysfs.cpu_model == from_libvirt.cpu_model  # the recordings use libvirt's name in cpuinfo too
    assert {f.address for f in from_sysfs.other_functions} == {f.address for f in from_libvirt.other_functions}


def test_what_the_recordings_hold():
    power9 = load_fixture_dir(libvirt(POWER9))
    assert [n.index for n in power9.cpu_nodes] == [0, 8]
    assert [(n.index, n.memory_mib // 1024) for n in power9.memory_only_nodes] == [(i, 16) for i in range(250, 256)]
    assert power9.threads_per_core == 4
    grace = load_fixture_dir(libvirt(GRACE))
    assert [n.memory_only for n in grace.nodes] == [False, True] and grace.gpus[0].numa_node == 0
    intel = load_fixture_dir(libvirt(INTEL))
    assert "0000:09:03.0" in {f.address for f in intel.other_functions}  # no IOMMU group: not a GPU here
    epyc = load_fixture_dir(libvirt(EPYC))
    aspeed = {g.address: g for g in epyc.gpus}["0000:c3:00.0"]  # in a group: a GPU that registration reserves
    assert (aspeed.vendor_id, aspeed.numa_node) == (0x1A03, UNKNOWN_NUMA_NODE)


# --- host add and capacity ------------------------------------------------------------------


def gpucloud(data_dir: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


# What each host sells, filled one plan at a time (2 cores and 8 GiB per node kept for the host).
EXPECTED = {
    # per node 8 free cores, 176 GiB of 1 GiB pages, 2 GPUs: two 1-GPU (4 cores each) per node;
    # one 2-GPU per node; the 3- and 4-GPU plans span both sockets once
    ("us-east", "rtx6000"): {"g1-gpu-rtx6000-1": 4, "g1-gpu-rtx6000-2": 2, "g1-gpu-rtx6000-3": 1,
                             "g1-gpu-rtx6000-4": 1},
    # 4 nodes of 8 free cores, 64 GiB of pages and 2 GPUs each: the 4-GPU small plan takes two nodes
    # (6 cores each), the 48-vCPU one all four (6 cores each), then no node has the cores left
    ("ap-west", "rtx4000ada"): {"g2-gpu-rtx4000a1-s": 8, "g2-gpu-rtx4000a1-m": 8, "g2-gpu-rtx4000a1-l": 4,
                                "g2-gpu-rtx4000a2-s": 4, "g2-gpu-rtx4000a2-m": 4, "g2-gpu-rtx4000a4-s": 2,
                                "g2-gpu-rtx4000a4-m": 1},
    # 2 CPU nodes of 14 free cores (SMT4) and 3 GPUs each; the 6 memory-only nodes sell nothing.
    # 2-GPU: one per socket, then the two GPUs left (one per socket) make a third across sockets
    ("ap-south", "h100"): {"g3-gpu-h100-1": 6, "g3-gpu-h100-2": 3, "g3-gpu-h100-3": 2, "g3-gpu-h100-4": 1},
    # one GPU, 30 free cores, 464 GiB of pages; its 96 GiB of HBM (memory-only node 1) is not RAM to sell
    ("eu-central", "h100"): {"g3-gpu-h100-1": 1, "g3-gpu-h100-2": 0, "g3-gpu-h100-3": 0, "g3-gpu-h100-4": 0},
    # the hidden-locality host, placed by the nodes recovered from local_cpulist: as the Intel host
    ("eu-central", "rtx6000"): {"g1-gpu-rtx6000-1": 4, "g1-gpu-rtx6000-2": 2, "g1-gpu-rtx6000-3": 1,
                                "g1-gpu-rtx6000-4": 1},
}  # fmt: skip


def capacity(data_dir: Path) -> dict:
    rows = json.loads(gpucloud(data_dir, "capacity", "--json"))
    return {(r["region"], r["gpu_model"]): r for r in rows}


def test_sysfs_recordings_register_and_sell_what_a_person_expects(tmp_path):
    said = {}
    for name in HOSTS:
        said[name] = gpucloud(tmp_path, "host", "add", "--profile", str(sysfs(name)), "--region", REGION[name],
                              "--name", name)
    assert said[POWER9].strip().endswith("2 NUMA nodes (+6 memory-only), 128 CPUs, 6 GPUs")
    assert said[GRACE].strip().endswith("1 NUMA node (+1 memory-only), 32 CPUs, 1 GPUs")
    rows = capacity(tmp_path)
    assert {k: r["sellable"] for k, r in rows.items()} == EXPECTED
    assert all(r["total"] == r["free"] and r["unavailable"] == 0 for r in rows.values())
    # BMC chips are no GPU model: in no row; the ASPEED (in an IOMMU group) is kept as a reserved device
    epyc = json.loads(gpucloud(tmp_path, "host", "show", EPYC, "--json"))
    assert [(g["address"], g["status"]) for g in epyc["gpus_unknown_node"]] == [("0000:c3:00.0", "reserved")]
    assert "ASPEED" in epyc["gpus_unknown_node"][0]["status_reason"]
    intel = json.loads(gpucloud(tmp_path, "host", "show", INTEL, "--json"))
    assert intel["gpus_unknown_node"] == [] and sum(len(n["gpus"]) for n in intel["nodes"]) == 4
    # memory-only nodes are shown as such; GPU locality says where it came from
    power9 = gpucloud(tmp_path, "host", "show", POWER9)
    assert "NUMA node 255 · memory-only: 16 GiB, no CPUs; never a guest's RAM" in power9
    hidden = json.loads(gpucloud(tmp_path, "host", "show", HIDDEN, "--json"))
    by_address = {g["address"]: g for n in hidden["nodes"] for g in n["gpus"]}
    assert {a: g["numa_node"] for a, g in by_address.items()} == HIDDEN_NODES
    assert by_address["0000:86:00.0"]["numa_from"] == "local_cpulist 10-19,30-39"
    assert "node 1 from local_cpulist 10-19,30-39" in gpucloud(tmp_path, "host", "show", HIDDEN)


def test_libvirt_recordings_sell_the_same_once_the_hidden_nodes_are_given(tmp_path):
    for name in HOSTS:
        options = [f"--gpu-node={a}={n}" for a, n in HIDDEN_NODES.items()] if name == HIDDEN else []
        gpucloud(tmp_path, "host", "add", "--profile", str(libvirt(name)), "--region", REGION[name], "--name", name,
                 *options)
    # the same recording without the nodes: its GPUs stay unknown and are not sold (numa_unknown_policy required)
    gpucloud(tmp_path, "host", "add", "--profile", str(libvirt(HIDDEN)), "--region", "ap-south", "--name", "as-is")
    rows = capacity(tmp_path)
    as_is = rows.pop(("ap-south", "rtx6000"))
    assert {k: r["sellable"] for k, r in rows.items()} == EXPECTED
    assert as_is["unavailable_reasons"] == {"numa-unknown": 4} and set(as_is["sellable"].values()) == {0}
    hidden = json.loads(gpucloud(tmp_path, "host", "show", HIDDEN, "--json"))
    assert {g["numa_from"] for n in hidden["nodes"] for g in n["gpus"]} == {"operator"}


def test_a_wrong_gpu_node_is_refused_naming_it(tmp_path):
    for value, message in (
        ("0000:3b:00.0=5", "node 5 is not a NUMA node with CPUs (those are 0, 1)"),
        ("0000:01:00.0=0", "the host has no GPU at 0000:01:00.0"),
        ("3b:00.0", "expected ADDRESS=NODE"),
    ):
        result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "host", "add", "--profile",
                                          str(libvirt(HIDDEN)), "--region", "us-east", "--gpu-node", value])
        assert result.exit_code != 0 and message in str(result.exception), (value, result.output)
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "host", "add", "--profile", str(libvirt(INTEL)),
                                      "--region", "us-east", "--gpu-node", "0000:3b:00.0=1"])
    assert "the firmware already puts it on node 0" in str(result.exception)
    listed = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "host", "list", "--json"]).output
    assert listed.strip().endswith("\n[]")  # after the note that the database is new and empty: nothing written


def test_rediscovery_keeps_the_nodes_libvirt_cannot_see(sqlite_db, tmp_path):
    from gpucloud.services import hosts
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, sqlite_db.url)
    seen_by_libvirt = load_fixture_dir(libvirt(HIDDEN))
    ref = hosts.register_host(sqlite_db, settings, name="h", region="us-east", topology=seen_by_libvirt,
                              driver="sim", gpu_nodes=HIDDEN_NODES)
    assert hosts.refresh_topology(sqlite_db, ref.id, seen_by_libvirt) == {"added": [], "vanished": [], "updated": []}
    detail = hosts.host_detail(sqlite_db, ref.id)
    assert {g["address"]: g["numa_node"] for n in detail["nodes"] for g in n["gpus"]} == HIDDEN_NODES


GRACE_PROFILE = """
cpu_model = "neoverse-v2"
sockets = 1
cores_per_socket = 32
threads_per_core = 1

[[node]]
socket = 0
memory_gib = 480
hugepages_1g = 464

[[node]]
memory_only = true
memory_gib = 96

[[gpu]]
address = "0000:01:00.0"
numa_node = 0
iommu_group = 7
vendor_id = 0x10de
device_id = 0x2331
class_code = 0x030200
product = "GH100 [H100 PCIe]"
"""


def test_a_profile_describes_memory_only_nodes_as_the_recordings_do():
    from gpucloud.hypervisor.profile import ProfileError, parse_profile

    assert parse_profile(GRACE_PROFILE) == load_fixture_dir(libvirt(GRACE))
    assert parse_profile(GRACE_PROFILE).node(1).distances == (80, 10)  # the default to and from memory-only nodes
    with pytest.raises(ProfileError, match="node 1 \\(memory-only: no socket, cores or 1 GiB pages\\): unknown key"):
        parse_profile(GRACE_PROFILE.replace("memory_only = true", "memory_only = true\nsocket = 0"))
    with pytest.raises(ProfileError, match="'memory_only' must be true or false"):
        parse_profile(GRACE_PROFILE.replace("memory_only = true", "memory_only = 1"))
