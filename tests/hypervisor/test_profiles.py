"""Host profiles: shipped machines expand to the right topology; bad files fail in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpucloud.catalog import load_catalog
from gpucloud.domain.topology import UNKNOWN_NUMA_NODE
from gpucloud.hypervisor.profile import ProfileError, builtin_profiles, load_profile, parse_profile

SHIPPED = {"rtx6000-2s4g", "rtx4000ada-2s8g", "h100-nps4-8g", "rtx6000-numa-unknown", "cpu-2s", "rtx6000-blocked-group"}


def _gpus_per_node(topo) -> dict[int, int]:
    out: dict[int, int] = {}
    for gpu in topo.gpus:
        out[gpu.numa_node] = out.get(gpu.numa_node, 0) + 1
    return out


def test_shipped_profiles_are_all_there() -> None:
    profiles = builtin_profiles()
    assert set(profiles) == SHIPPED
    assert all(p.is_file() for p in profiles.values())


@pytest.mark.parametrize(
    ("name", "nodes", "cpus", "gpus_per_node", "memory_gib", "hugepages"),
    [
        ("rtx6000-2s4g", 2, 80, {0: 2, 1: 2}, 192, 160),
        ("rtx4000ada-2s8g", 2, 128, {0: 4, 1: 4}, 256, 224),
        ("h100-nps4-8g", 4, 192, {0: 2, 1: 2, 2: 2, 3: 2}, 384, 352),
        ("rtx6000-numa-unknown", 2, 80, {UNKNOWN_NUMA_NODE: 4}, 192, 160),
        ("cpu-2s", 2, 128, {}, 256, 0),
        ("rtx6000-blocked-group", 2, 80, {0: 2, 1: 2}, 192, 160),
    ],
)
def test_shipped_profile_key_numbers(name, nodes, cpus, gpus_per_node, memory_gib, hugepages) -> None:
    topo = load_profile(name)
    assert len(topo.nodes) == nodes
    assert topo.total_cpus == cpus
    assert topo.threads_per_core == 2
    assert all(len(n.cpus) == cpus // nodes for n in topo.nodes)
    assert _gpus_per_node(topo) == gpus_per_node
    assert {(n.memory_mib, n.hugepages_1g) for n in topo.nodes} == {(memory_gib * 1024, hugepages)}
    catalog = load_catalog()
    assert all(catalog.model_for_device(g.vendor_id, g.device_id) for g in topo.gpus)


def test_cpus_are_numbered_like_linux_on_two_sockets() -> None:
    topo = load_profile("rtx6000-2s4g")
    node0, node1 = topo.nodes
    assert node0.cpu_ids == tuple(range(0, 20)) + tuple(range(40, 60))
    assert node1.cpu_ids == tuple(range(20, 40)) + tuple(range(60, 80))
    cpu = {c.id: c for n in topo.nodes for c in n.cpus}
    assert (cpu[0].socket, cpu[0].core, cpu[0].siblings) == (0, 0, (0, 40))
    assert (cpu[20].socket, cpu[20].core, cpu[20].siblings) == (1, 0, (20, 60))  # core ids restart per socket
    assert (cpu[79].socket, cpu[79].core, cpu[79].siblings) == (1, 19, (39, 79))
    assert node0.distances == (10, 21) and node1.distances == (21, 10)


def test_nps4_splits_one_socket_into_four_nodes() -> None:
    topo = load_profile("h100-nps4-8g")
    assert topo.node(1).cpu_ids == tuple(range(24, 48)) + tuple(range(120, 144))
    assert {c.socket for n in topo.nodes for c in n.cpus} == {0}
    assert [n.distances for n in topo.nodes][2] == (12, 12, 10, 12)
    assert all(g.companions == () and g.passthrough_blocker is None for g in topo.gpus)
    assert len({g.iommu_group for g in topo.gpus}) == 8


def test_turing_gpus_take_their_companion_functions() -> None:
    gpu = load_profile("rtx6000-2s4g").gpus[0]
    assert gpu.address == "0000:3b:00.0"
    assert [(c.address, c.class_code, c.device_id) for c in gpu.companions] == [
        ("0000:3b:00.1", 0x040300, 0x10F7),
        ("0000:3b:00.2", 0x0C0330, 0x1AD6),
        ("0000:3b:00.3", 0x0C8000, 0x1AD7),
    ]
    assert gpu.passthrough_functions == ("0000:3b:00.0", "0000:3b:00.1", "0000:3b:00.2", "0000:3b:00.3")


def test_blocked_group_names_the_ethernet_function() -> None:
    topo = load_profile("rtx6000-blocked-group")
    blockers = {g.address: g.passthrough_blocker for g in topo.gpus}
    assert [a for a, b in blockers.items() if b] == ["0000:af:00.0"]
    assert "0000:b0:00.0 (class 020000)" in blockers["0000:af:00.0"]
    assert "IOMMU group 122" in blockers["0000:af:00.0"]


def test_cpu_only_profile_takes_explicit_distances() -> None:
    topo = load_profile("cpu-2s")
    assert topo.gpus == ()
    assert [n.distances for n in topo.nodes] == [(10, 32), (32, 10)]


def test_load_profile_accepts_paths(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(builtin_profiles()["cpu-2s"].read_text())
    assert load_profile(path) == load_profile(str(path)) == load_profile("cpu-2s")


# --- the format ----------------------------------------------------------------------------

SMALL = """
sockets = 2
cores_per_socket = 8
threads_per_core = 2
cpu_model = "test"
{nodes}
[[gpu]]
address = "41:00.0"
vendor_id = 0x10de
device_id = 0x2331
class_code = 0x030200
numa_node = {gpu_node}
iommu_group = 3
{gpu_extra}
"""
TWO_NODES = """
[[node]]
socket = 0
memory_gib = 16
[[node]]
socket = 1
memory_gib = 16
"""


def small(nodes: str = TWO_NODES, gpu_node: int = 0, gpu_extra: str = "", top: str = "") -> str:
    return top + SMALL.format(nodes=nodes, gpu_node=gpu_node, gpu_extra=gpu_extra)


def test_nodes_per_socket_get_default_distances_and_split_cores() -> None:
    nps2 = "".join(f"[[node]]\nsocket = {s}\nmemory_gib = 8\n" for s in (0, 0, 1, 1))
    topo = parse_profile(small(nodes=nps2))
    assert [n.distances for n in topo.nodes][0] == (10, 12, 21, 21)
    assert topo.node(1).cpu_ids == (4, 5, 6, 7, 20, 21, 22, 23)
    assert topo.gpus[0].address == "0000:41:00.0"  # short addresses are normalised


def test_explicit_core_lists_allow_uneven_nodes() -> None:
    nodes = "[[node]]\nsocket = 0\ncores = '0-5'\nmemory_gib = 8\n[[node]]\nsocket = 0\ncores = '6,7'\nmemory_gib = 8\n"
    nodes += "[[node]]\nsocket = 1\nmemory_gib = 8\n"
    topo = parse_profile(small(nodes=nodes))
    assert [len(n.cpus) for n in topo.nodes] == [12, 4, 16]
    assert topo.node(1).cpu_ids == (6, 7, 22, 23)


def test_companion_by_address_and_function() -> None:
    extra = """companions = [
  { function = 1, class_code = 0x040300, vendor_id = 0x10de, device_id = 0x22bc },
  { address = "0000:40:00.0", class_code = 0x060400 },
]"""
    gpu = parse_profile(small(gpu_extra=extra)).gpus[0]
    assert [c.address for c in gpu.companions] == ["0000:40:00.0", "0000:41:00.1"]
    assert gpu.passthrough_blocker is None  # bridges stay with the host and block nothing
    assert gpu.passthrough_functions == ("0000:41:00.0", "0000:41:00.1")


def _error(text: str, source: str = "hosts/bad.toml") -> str:
    with pytest.raises(ProfileError) as exc:
        parse_profile(text, source)
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"{source}: "), message
    return message


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("sockets = [", "not valid TOML"),
        (small().replace("cores_per_socket = 8", ""), "missing key 'cores_per_socket'"),
        (small().replace("sockets = 2", "sockets = 'two'"), "'sockets' must be int"),
        (small(gpu_node=2), "NUMA node 2 does not exist"),
        (small(gpu_extra='address2 = "x"'), "unknown key 'address2'"),
        (small(gpu_extra="companions = [{ address = '0000:41:00.0', class_code = 0x040300 }]"), "duplicate PCI address 0000:41:00.0"),
        (small(gpu_extra="[[gpu]]\naddress = '0000:41:00.0'\nvendor_id = 1\ndevice_id = 2\nclass_code = 0x030000\nnuma_node = 0\niommu_group = 9"),
         "duplicate PCI address 0000:41:00.0"),
        (small(gpu_extra="[[gpu]]\naddress = '0000:42:00.0'\nvendor_id = 1\ndevice_id = 2\nclass_code = 0x030000\nnuma_node = 0\niommu_group = 3"),
         "IOMMU group 3 is already given to 0000:41:00.0"),
        (small().replace("class_code = 0x030200", "class_code = 0x020000"), "class 0x020000 is not a GPU"),
        (small().replace('"41:00.0"', '"41:00"'), "not a PCI address"),
        (small(nodes=TWO_NODES.replace("socket = 1", "socket = 2")), "socket 2 does not exist"),
        (small(nodes=TWO_NODES.replace("socket = 1", "socket = 0")), "socket 1 has no [[node]]"),
        (small(nodes="[[node]]\nsocket = 0\ncores = '0-3'\nmemory_gib = 1\n[[node]]\nsocket = 0\nmemory_gib = 1\n"
                     "[[node]]\nsocket = 1\nmemory_gib = 1\n"), "socket 0: give 'cores' for all of its nodes or for none"),
        (small(nodes="".join(f"[[node]]\nsocket = {s}\nmemory_gib = 1\n" for s in (0, 0, 0, 1))), "8 cores do not split evenly"),
        (small(nodes="[[node]]\nsocket = 0\ncores = '0-7'\nmemory_gib = 1\n[[node]]\nsocket = 0\ncores = '7'\nmemory_gib = 1\n"
                     "[[node]]\nsocket = 1\nmemory_gib = 1\n"), "core 7 of socket 0 is already in node 0"),
        (small(nodes="[[node]]\nsocket = 0\ncores = '0-6'\nmemory_gib = 1\n[[node]]\nsocket = 1\ncores = '0-7'\nmemory_gib = 1\n"),
         "socket 0: core 7 is in no node"),
        (small(nodes=TWO_NODES.replace("memory_gib = 16\n[", "memory_gib = 16\nhugepages_1g = 17\n[")), "hugepages_1g <= memory_gib"),
        (small(top="distances = [[10, 21]]\n"), "2×2 matrix"),
        (small(top="distances = [[10, 5], [5, 10]]\n"), "from 10 to 255"),
    ],
)
def test_bad_profiles_fail_in_one_line_naming_the_file(text: str, complaint: str) -> None:
    assert complaint in _error(text)


def test_unknown_profile_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ProfileError) as exc:
        load_profile("rtx9000-1s1g")
    message = str(exc.value)
    assert message.startswith("rtx9000-1s1g: ") and "\n" not in message
    assert "rtx6000-2s4g" in message


def test_bad_file_is_named_by_its_path(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(small(gpu_node=7))
    with pytest.raises(ProfileError) as exc:
        load_profile(path)
    assert str(exc.value).startswith(f"{path}: ")
    assert "NUMA node 7" in str(exc.value)
