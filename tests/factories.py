"""Small, explicit topologies for tests that must not depend on shipped profiles."""

from __future__ import annotations

import base64

from gpucloud.domain.topology import Cpu, Gpu, HostTopology, NumaNode, PciFunction

RTX6000 = (0x10DE, 0x1E30)


def two_node_host(gpus_per_node: int = 2, cores_per_node: int = 8, memory_gib: int = 128,
                  hugepages: int = 0, gpu_ids: tuple[int, int] = RTX6000) -> HostTopology:
    """2 sockets = 2 NUMA nodes, SMT2, Linux numbering (siblings are n and n + total cores)."""
    total_cores = 2 * cores_per_node
    nodes = []
    for node in range(2):
        cpus = []
        for core in range(cores_per_node):
            first = node * cores_per_node + core
            pair = (first, first + total_cores)
            cpus += [Cpu(first, node, core, pair), Cpu(first + total_cores, node, core, pair)]
        nodes.append(NumaNode(node, tuple(cpus), memory_gib * 1024, hugepages, (10, 21) if node == 0 else (21, 10)))
    gpus = []
    for node in range(2):
        for i in range(gpus_per_node):
            bus = 0x3B + node * 0x40 + i * 0x10
            audio = PciFunction(f"0000:{bus:02x}:00.1", 0x040300, 0x10DE, 0x10F7, "audio")
            gpus.append(Gpu(f"0000:{bus:02x}:00.0", gpu_ids[0], gpu_ids[1], 0x030000, node, 10 + node * 8 + i,
                            "Quadro RTX 6000", (audio,)))
    return HostTopology(tuple(nodes), tuple(gpus), "Test CPU", 2)


def ssh_public_key(comment: str = "me@laptop", kind: str = "ssh-ed25519", fill: int = 0) -> str:
    """An OpenSSH public key line whose blob names its own type (what validation checks)."""
    blob = len(kind).to_bytes(4, "big") + kind.encode() + bytes([fill]) * 32
    return f"{kind} {base64.b64encode(blob).decode()} {comment}"
