"""The domain XML builder: every document is valid for libvirt and means what the spec says.

The checks parse the XML back and follow its references (hostdev → root port → expander →
guest cell → host node), rather than comparing strings.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from lxml import etree

from gpucloud.domain.guest import GuestCell, GuestGpu
from gpucloud.domain.topology import parse_cpu_list
from gpucloud.hypervisor.domain_xml import DomainSpecError, Nic, build_domain_xml, mac_address

from .conftest import RNG_SCHEMA

SCHEMA = etree.RelaxNG(file=str(RNG_SCHEMA))


def parse(xml: str) -> etree._Element:
    root = etree.fromstring(xml.encode())
    assert SCHEMA.validate(root), SCHEMA.error_log
    return root


def vcpu_pins(root: etree._Element) -> dict[int, tuple[int, ...]]:
    return {int(p.get("vcpu")): parse_cpu_list(p.get("cpuset")) for p in root.iterfind("cputune/vcpupin")}


def guest_address_of(device: etree._Element) -> tuple[int, int, int]:
    address = device.find("address[@type='pci']")
    return int(address.get("bus"), 16), int(address.get("slot"), 16), int(address.get("function"), 16)


def host_address(hostdev: etree._Element) -> str:
    a = hostdev.find("source/address")
    return f"{int(a.get('domain'), 16):04x}:{int(a.get('bus'), 16):02x}:{int(a.get('slot'), 16):02x}.{int(a.get('function'), 16):x}"


def guest_cell_of_bus(root: etree._Element, bus_index: int) -> int:
    """Follow a guest PCI bus up through root ports to the pxb-pcie above it; its `<node>`."""
    controllers = {int(c.get("index")): c for c in root.iterfind("devices/controller[@type='pci']")}
    controller = controllers[bus_index]
    while controller.get("model") == "pcie-root-port":
        controller = controllers[guest_address_of(controller)[0]]
    assert controller.get("model") == "pcie-expander-bus", "a GPU sits outside every expander"
    return int(controller.findtext("target/node"))


def test_every_variant_validates_against_the_libvirt_schema(two_gpu_spec, small_host_spec):
    variants = [
        two_gpu_spec(),
        two_gpu_spec(domain_type="qemu", cloud_init=None, image=None, disk_mib=0),
        two_gpu_spec(cells=tuple(replace(c, hugepages_1g=False) for c in two_gpu_spec().cells)),
        small_host_spec(),
        small_host_spec(gpus=(), vcpu_pins=(None, None), shared_cpuset=(0, 1), emulator_cpuset=()),
    ]
    for spec in variants:
        for nic in (Nic(), Nic.parse("bridge:br0"), Nic.parse("user")):
            parse(build_domain_xml(spec, nic=nic))
            parse(build_domain_xml(spec, nic=nic, stand_in_gpus=True))


def test_each_vcpu_is_pinned_to_its_claimed_host_cpu(two_gpu_spec):
    spec = two_gpu_spec()
    root = parse(build_domain_xml(spec))
    assert vcpu_pins(root) == {v: (cpu,) for v, cpu in enumerate(spec.vcpu_pins)}
    assert int(root.findtext("vcpu")) == 8
    assert root.find("vcpu").get("cpuset") is None
    assert parse_cpu_list(root.find("cputune/emulatorpin").get("cpuset")) == (0, 32, 64, 96)
    assert root.find("features/kvm/hint-dedicated").get("state") == "on"


def test_sibling_threads_are_guest_threads_and_cells_mirror_host_nodes(two_gpu_spec):
    root = parse(build_domain_xml(two_gpu_spec()))
    topology = root.find("cpu/topology")
    assert (topology.get("sockets"), topology.get("cores"), topology.get("threads")) == ("2", "2", "2")
    cells = {int(c.get("id")): c for c in root.iterfind("cpu/numa/cell")}
    assert {i: parse_cpu_list(c.get("cpus")) for i, c in cells.items()} == {0: (0, 1, 2, 3), 1: (4, 5, 6, 7)}
    assert {i: (int(c.get("memory")), c.get("unit")) for i, c in cells.items()} == {0: (8192, "MiB"), 1: (8192, "MiB")}
    assert int(root.findtext("memory")) == 16384 and root.find("memory").get("unit") == "MiB"


def test_memory_is_bound_strictly_per_guest_cell_to_its_host_node(two_gpu_spec):
    spec = two_gpu_spec(
        cells=(
            GuestCell(id=0, host_node=3, vcpus=(0, 1, 2, 3), memory_mib=4096),
            GuestCell(id=1, host_node=1, vcpus=(4, 5, 6, 7), memory_mib=8192),
        )
    )
    root = parse(build_domain_xml(spec))
    memory = root.find("numatune/memory")
    assert memory.get("mode") == "strict" and parse_cpu_list(memory.get("nodeset")) == (1, 3)
    memnodes = {int(m.get("cellid")): (m.get("mode"), m.get("nodeset")) for m in root.iterfind("numatune/memnode")}
    assert memnodes == {0: ("strict", "3"), 1: ("strict", "1")}


def test_one_gib_pages_back_exactly_the_cells_that_claimed_them(two_gpu_spec):
    base = two_gpu_spec()
    both = parse(build_domain_xml(base)).find("memoryBacking/hugepages/page")
    assert (both.get("size"), both.get("unit"), parse_cpu_list(both.get("nodeset"))) == ("1", "G", (0, 1))
    one = two_gpu_spec(cells=(base.cells[0], replace(base.cells[1], hugepages_1g=False)))
    assert parse(build_domain_xml(one)).find("memoryBacking/hugepages/page").get("nodeset") == "0"
    none = two_gpu_spec(cells=tuple(replace(c, hugepages_1g=False) for c in base.cells))
    assert parse(build_domain_xml(none)).find("memoryBacking") is None


def test_each_gpu_sits_behind_the_expander_of_its_own_cell(two_gpu_spec):
    spec = two_gpu_spec()
    root = parse(build_domain_xml(spec))
    expanders = root.findall("devices/controller[@model='pcie-expander-bus']")
    assert sorted(int(e.findtext("target/node")) for e in expanders) == [0, 1]
    assert all(e.find("model").get("name") == "pxb-pcie" for e in expanders)
    where = {host_address(h): guest_cell_of_bus(root, guest_address_of(h)[0]) for h in root.iterfind("devices/hostdev")}
    assert where == {"0000:c1:00.0": 0, "0000:c1:00.1": 0, "0000:41:00.0": 1}
    for hostdev in root.iterfind("devices/hostdev"):
        assert (hostdev.get("mode"), hostdev.get("type"), hostdev.get("managed")) == ("subsystem", "pci", "yes")
        assert hostdev.find("driver").get("name") == "vfio"


def test_companion_functions_keep_the_multifunction_layout(two_gpu_spec):
    root = parse(build_domain_xml(two_gpu_spec()))
    by_host = {host_address(h): h for h in root.iterfind("devices/hostdev")}
    gpu, audio = guest_address_of(by_host["0000:c1:00.0"]), guest_address_of(by_host["0000:c1:00.1"])
    assert gpu[:2] == audio[:2] and (gpu[2], audio[2]) == (0, 1)
    assert by_host["0000:c1:00.0"].find("address").get("multifunction") == "on"
    assert by_host["0000:c1:00.1"].find("address").get("multifunction") is None
    assert by_host["0000:41:00.0"].find("address").get("multifunction") is None  # a single function


def test_expander_bus_ranges_leave_room_for_their_root_ports(two_gpu_spec):
    """Buses busNr..busNr+ports belong to one expander; ranges must not overlap."""
    four = tuple(
        GuestGpu(address=f"0000:{b:02x}:00.0", functions=(f"0000:{b:02x}:00.0",), cell=i % 2)
        for i, b in enumerate((0x17, 0x41, 0x81, 0xC1))
    )
    root = parse(build_domain_xml(two_gpu_spec(gpus=four)))
    ports_below: dict[int, int] = {}
    for port in root.iterfind("devices/controller[@model='pcie-root-port']"):
        ports_below[guest_address_of(port)[0]] = ports_below.get(guest_address_of(port)[0], 0) + 1
    ranges = []
    for expander in root.iterfind("devices/controller[@model='pcie-expander-bus']"):
        first = int(expander.find("target").get("busNr"))
        ranges.append(range(first, first + 1 + ports_below[int(expander.get("index"))]))
    assert all(r.stop <= 255 for r in ranges)
    buses = [b for r in ranges for b in r]
    assert len(buses) == len(set(buses)) == 6


def test_a_shared_instance_floats_over_the_shared_cpus(small_host_spec):
    spec = small_host_spec(gpus=(), vcpu_pins=(None, None), shared_cpuset=(0, 1), emulator_cpuset=())
    root = parse(build_domain_xml(spec))
    assert parse_cpu_list(root.find("vcpu").get("cpuset")) == (0, 1)
    assert root.find("cputune") is None
    assert root.find("devices/controller[@model='pcie-expander-bus']") is None
    assert root.find("devices/hostdev") is None


def test_cpu_mode_follows_the_domain_type(two_gpu_spec):
    kvm = parse(build_domain_xml(two_gpu_spec()))
    assert kvm.get("type") == "kvm" and kvm.find("cpu").get("mode") == "host-passthrough"
    tcg = parse(build_domain_xml(two_gpu_spec(domain_type="qemu")))
    assert tcg.get("type") == "qemu" and tcg.find("cpu").get("mode") == "custom"
    assert tcg.findtext("cpu/model") == "qemu64"
    assert tcg.find("features/kvm") is None
    assert tcg.find("os/type").get("machine") == "q35"


def test_disk_seed_network_and_console_surround_the_gpus(two_gpu_spec):
    spec = two_gpu_spec()
    root = parse(build_domain_xml(spec, pool="tank", nic=Nic.parse("bridge:br0")))
    disks = {d.get("device"): d for d in root.iterfind("devices/disk")}
    assert disks["disk"].find("source").attrib == {"pool": "tank", "volume": f"{spec.name}-disk.qcow2"}
    assert disks["disk"].find("driver").get("type") == "qcow2"
    assert disks["cdrom"].find("source").attrib == {"pool": "tank", "volume": f"{spec.name}-seed.iso"}
    assert disks["cdrom"].find("readonly") is not None
    nic = root.find("devices/interface")
    assert nic.get("type") == "bridge" and nic.find("source").get("bridge") == "br0"
    assert nic.find("mac").get("address") == mac_address(spec.uuid)
    assert root.find("devices/serial").get("type") == "pty"
    assert root.find("devices/console/target").get("type") == "serial"
    assert root.findtext("title") == "training box"
    bare = parse(build_domain_xml(two_gpu_spec(image=None, disk_mib=0, cloud_init=None)))
    assert bare.find("devices/disk") is None


def test_stand_ins_take_exactly_the_guest_addresses_of_the_hostdevs(two_gpu_spec):
    spec = two_gpu_spec()
    real = parse(build_domain_xml(spec))
    stand_in = parse(build_domain_xml(spec, stand_in_gpus=True))
    assert stand_in.find("devices/hostdev") is None
    assert sorted(guest_address_of(h) for h in real.iterfind("devices/hostdev")) == sorted(
        guest_address_of(r) for r in stand_in.iterfind("devices/rng")
    )


def test_mac_address_is_stable_and_locally_administered():
    assert mac_address("5f0c4f6e-3d7a-4b8e-9a0b-1c2d3e4f5a6b") == mac_address("5f0c4f6e-3d7a-4b8e-9a0b-1c2d3e4f5a6b")
    assert mac_address("5f0c4f6e-3d7a-4b8e-9a0b-1c2d3e4f5a6b") != mac_address("00000000-0000-0000-0000-000000000001")
    assert mac_address("x").startswith("52:54:00:")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gpus": (GuestGpu("0000:41:00.0", ("0000:41:00.0",), cell=2),)}, "guest cell 2"),
        ({"gpus": (GuestGpu("0000:41:00.0", ("0000:41:00.1", "0000:41:00.0"), cell=0),)}, "start with the GPU"),
        (
            {"gpus": (GuestGpu("0000:41:00.0", ("0000:41:00.0",), 0), GuestGpu("41:00.0", ("41:00.0",), 1))},
            "passed through twice: 0000:41:00.0",
        ),
        ({"gpus": (GuestGpu("zz:00.0", ("zz:00.0",), cell=0),)}, "not a PCI address"),
        ({"vcpu_pins": (2, 66, 3, 67, 34, 98, 35)}, "vCPUs 0..6"),
        ({"vcpu_pins": (2, 2, 3, 67, 34, 98, 35, 99)}, "same host CPU"),
        ({"threads_per_core": 3}, "whole cores of 3 threads"),
        ({"domain_type": "xen"}, "domain_type 'xen'"),
        ({"uuid": "nope"}, "not a UUID"),
        ({"name": "two words"}, "domain name"),
    ],
)
def test_specs_that_cannot_run_are_refused_with_a_reason(two_gpu_spec, change, message):
    with pytest.raises(DomainSpecError, match=message):
        build_domain_xml(two_gpu_spec(**change))


def test_cells_must_be_numbered_and_hold_whole_pages(two_gpu_spec):
    spec = two_gpu_spec()
    with pytest.raises(DomainSpecError, match="cell ids must be 0..1"):
        build_domain_xml(replace(spec, cells=(spec.cells[0], replace(spec.cells[1], id=5))))
    with pytest.raises(DomainSpecError, match="whole number of 1 GiB pages"):
        build_domain_xml(replace(spec, cells=(replace(spec.cells[0], memory_mib=1536), spec.cells[1])))
    with pytest.raises(DomainSpecError, match="host node -1"):
        build_domain_xml(replace(spec, cells=(replace(spec.cells[0], host_node=-1), spec.cells[1])))


def test_network_interface_text_is_parsed_or_refused():
    assert Nic.parse("network:default") == Nic("network", "default")
    assert Nic.parse("bridge:br0") == Nic("bridge", "br0")
    assert Nic.parse("user") == Nic("user", "")
    with pytest.raises(DomainSpecError, match="expected 'network:NAME'"):
        Nic.parse("bridge")
