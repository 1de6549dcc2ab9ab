"""The three rules for hosts as they really are (domain.topology): BMC display chips,
memory-only NUMA nodes, and GPU locality from local_cpulist when the firmware says -1."""

from __future__ import annotations

import pytest

from gpucloud.catalog import load_catalog
from gpucloud.domain.host_state import build_host_state
from gpucloud.domain.topology import (
    FROM_FIRMWARE,
    FROM_LOCAL_CPULIST,
    UNKNOWN_NUMA_NODE,
    Cpu,
    Gpu,
    HostTopology,
    NumaNode,
    TopologyError,
    cpulist_locality,
    locality_from_cpulist,
    numa_summary,
    unsold_display_reason,
)


def node(index: int, cpus: range | tuple = (), memory_gib: int = 64) -> NumaNode:
    return NumaNode(index, tuple(Cpu(c, 0, c, (c,)) for c in cpus), memory_gib * 1024)


# Two CPU nodes of 8 threads, two memory-only nodes (GPU memory, HBM, CXL).
NODES = (node(0, range(0, 8)), node(1, range(8, 16)), node(2, memory_gib=16), node(3, memory_gib=16))


def gpu(address: str, numa: int, device: int = 0x2331) -> Gpu:
    return Gpu(address, 0x10DE, device, 0x030200, numa, int(address[5:7], 16))


def test_a_bmc_chip_or_an_unknown_card_is_not_a_gpu_we_sell():
    catalog = load_catalog()
    assert unsold_display_reason(0x10DE, 0x2331, catalog) is None  # H100: sold
    assert unsold_display_reason(0x102B, 0x0532, catalog) == (
        "102b:0532 is not a GPU model in the catalog (Matrox: a management controller's display chip)"
    )
    assert unsold_display_reason(0x1A03, 0x2000, catalog).startswith("1a03:2000 is not a GPU model in the catalog")
    assert unsold_display_reason(0x10DE, 0x1234, catalog) == "10de:1234 is not a GPU model in the catalog"


def test_memory_only_nodes_are_recognised_and_counted_apart():
    host = HostTopology(NODES)
    assert [n.index for n in host.cpu_nodes] == [0, 1]
    assert [n.index for n in host.memory_only_nodes] == [2, 3]
    assert numa_summary(2, 2) == "2 NUMA nodes (+2 memory-only)"
    assert numa_summary(1, 0) == "1 NUMA node"
    with pytest.raises(TopologyError, match="at least one NUMA node with CPUs"):
        HostTopology((node(0, memory_gib=16),))


def test_memory_only_nodes_are_not_placement_nodes():
    host = HostTopology(NODES, gpus=(gpu("0000:41:00.0", 0), gpu("0000:c1:00.0", 2)))
    state = build_host_state(1, "us-east", host, {"0000:41:00.0": "h100", "0000:c1:00.0": "h100"})
    assert [n.index for n in state.nodes] == [0, 1]  # their memory is never a guest's RAM
    assert [g.address for g in state.nodes[0].gpus] == ["0000:41:00.0"]
    # a GPU the firmware puts on a memory-only node has no local cores: its node counts as unknown
    assert [g.address for g in state.numa_unknown_gpus] == ["0000:c1:00.0"]


@pytest.mark.parametrize(
    ("local", "nodes"),
    [
        ((0, 1, 2, 3, 4, 5, 6, 7), (0,)),  # exactly node 0
        ((8, 9, 10), (1,)),  # within node 1
        (tuple(range(16)), ()),  # every CPU: tells nothing, the node stays unknown
        ((3, 12), ()),  # touches every CPU node
        ((), ()),  # no local_cpulist
        ((0, 99), ()),  # a CPU the host lacks: not to be trusted
    ],
)
def test_locality_from_local_cpulist(local, nodes):
    assert locality_from_cpulist(local, NODES) == nodes


def test_locality_within_a_set_of_nodes_places_the_gpu_on_the_lowest():
    four = (node(0, range(0, 4)), node(1, range(4, 8)), node(2, range(8, 12)), node(3, range(12, 16)))
    assert locality_from_cpulist(tuple(range(0, 8)), four) == (0, 1)  # one socket of a SNC-2 host
    host = cpulist_locality(HostTopology(four, gpus=(gpu("0000:41:00.0", -1),)), {"0000:41:00.0": tuple(range(8))})
    assert (host.gpus[0].numa_node, host.gpus[0].numa_source) == (0, FROM_LOCAL_CPULIST)


def test_cpulist_locality_fills_only_unknown_nodes():
    host = HostTopology(NODES, gpus=(gpu("0000:41:00.0", -1), gpu("0000:81:00.0", 0), gpu("0000:c1:00.0", -1)))
    found = cpulist_locality(host, {"0000:41:00.0": (8, 9), "0000:81:00.0": (8, 9), "0000:c1:00.0": tuple(range(16))})
    by = {g.address: g for g in found.gpus}
    assert (by["0000:41:00.0"].numa_node, by["0000:41:00.0"].numa_source) == (1, FROM_LOCAL_CPULIST)
    assert by["0000:41:00.0"].local_cpus == (8, 9)
    assert (by["0000:81:00.0"].numa_node, by["0000:81:00.0"].numa_source) == (0, FROM_FIRMWARE)
    assert by["0000:c1:00.0"].numa_node == UNKNOWN_NUMA_NODE


def test_slit_rows_are_read_by_node_number_when_the_numbers_have_gaps():
    cpu = (NumaNode(0, (Cpu(0, 0, 0, (0,)),), 1024, distances=(10, 40, 80)),
           NumaNode(8, (Cpu(1, 1, 0, (1,)),), 1024, distances=(40, 10, 80)),
           NumaNode(250, (), 1024, distances=(80, 80, 10)))
    host = HostTopology(cpu)
    assert host.distances_by_index(cpu[0]) == (10, 0, 0, 0, 0, 0, 0, 0, 40)
    state = build_host_state(1, "us-east", host, {})
    assert state.node(0).distances[8] == 40 and state.node(8).distances[0] == 40
    contiguous = HostTopology(NODES[:2])
    assert contiguous.distances_by_index(NODES[0]) == NODES[0].distances  # unchanged where numbers have no gaps
