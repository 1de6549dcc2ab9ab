"""Discovery of recorded libvirt hosts (capabilities + nodedev XML) into the topology model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from lxml import etree

from gpucloud.domain.topology import UNKNOWN_NUMA_NODE
from gpucloud.hypervisor.discovery import (
    DiscoveryError,
    load_fixture_dir,
    parse_capabilities,
    parse_node_devices,
    topology_from_libvirt,
)
from gpucloud.hypervisor.profile import load_profile

HOSTS = Path(__file__).resolve().parent.parent / "fixtures" / "hosts"
SCHEMAS = Path("/usr/share/libvirt/schemas")
FIXTURES = ["rtx6000-2s4g", "rtx6000-numa-unknown", "rtx4000ada-2s8g", "h100-nps4-8g"]

# What each recorded machine is, written from the hardware's spec sheet, not from the XML.
EXPECTED = {
    "rtx6000-2s4g": dict(
        model="Cascadelake-Server-noTSX", cores=20, sockets=2, nodes_per_socket=1, memory_gib=192, huge=160,
        far=21, gpus={"0000:3b:00.0": (0, 34), "0000:5e:00.0": (0, 52), "0000:86:00.0": (1, 104), "0000:af:00.0": (1, 122)},
        companions={1: 0x040300, 2: 0x0C0330, 3: 0x0C8000}, device_id=0x1E30,
    ),
    "rtx4000ada-2s8g": dict(
        model="Icelake-Server-noTSX", cores=32, sockets=2, nodes_per_socket=1, memory_gib=256, huge=224, far=21,
        gpus={
            "0000:17:00.0": (0, 21), "0000:31:00.0": (0, 38), "0000:4b:00.0": (0, 55), "0000:65:00.0": (0, 72),
            "0000:98:00.0": (1, 131), "0000:b1:00.0": (1, 148), "0000:ca:00.0": (1, 165), "0000:e3:00.0": (1, 182),
        },
        companions={1: 0x040300}, device_id=0x27B2,
    ),
    "h100-nps4-8g": dict(
        model="EPYC-Genoa", cores=96, sockets=1, nodes_per_socket=4, memory_gib=384, huge=352, far=12,
        gpus={
            "0000:01:00.0": (0, 14), "0000:21:00.0": (0, 30), "0000:41:00.0": (1, 46), "0000:61:00.0": (1, 62),
            "0000:81:00.0": (2, 78), "0000:a1:00.0": (2, 94), "0000:c1:00.0": (3, 110), "0000:e1:00.0": (3, 126),
        },
        companions={}, device_id=0x2331,
    ),
}
EXPECTED["rtx6000-numa-unknown"] = dict(
    EXPECTED["rtx6000-2s4g"], gpus={a: (UNKNOWN_NUMA_NODE, g) for a, (_, g) in EXPECTED["rtx6000-2s4g"]["gpus"].items()}
)


def _read(host: str) -> tuple[str, list[str]]:
    folder = HOSTS / host
    return (folder / "capabilities.xml").read_text(), [f.read_text() for f in sorted((folder / "nodedev").glob("*.xml"))]


def _one_line_error(exc: pytest.ExceptionInfo, source: str) -> str:
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(source), message
    return message


# --- the recorded hosts ---------------------------------------------------------------------


@pytest.mark.parametrize("host", FIXTURES)
def test_fixture_parses_to_the_machine_it_records(host: str) -> None:
    want = EXPECTED[host]
    topo = load_fixture_dir(HOSTS / host)
    node_count = want["sockets"] * want["nodes_per_socket"]
    total_cores = want["sockets"] * want["cores"]

    assert topo.cpu_model == want["model"]
    assert topo.threads_per_core == 2
    assert [n.index for n in topo.nodes] == list(range(node_count))
    assert topo.total_cpus == total_cores * 2
    for node in topo.nodes:
        assert len(node.cpus) == 2 * total_cores // node_count
        assert node.memory_mib == want["memory_gib"] * 1024
        assert node.hugepages_1g == want["huge"]
        assert node.distances == tuple(
            10 if other == node.index
            else 12 if other // want["nodes_per_socket"] == node.index // want["nodes_per_socket"]
            else want["far"]
            for other in range(node_count)
        )
        # Linux numbering: the SMT sibling of CPU n is n + (number of cores), in the same node.
        for cpu in node.cpus:
            first = cpu.id % total_cores
            assert cpu.siblings == (first, first + total_cores)
            assert set(cpu.siblings) <= set(node.cpu_ids)
            assert cpu.socket == first // want["cores"] and cpu.core == first % want["cores"]
        assert len(node.cores()) == total_cores // node_count

    assert {g.address: (g.numa_node, g.iommu_group) for g in topo.gpus} == want["gpus"]
    for gpu in topo.gpus:
        assert (gpu.vendor_id, gpu.device_id) == (0x10DE, want["device_id"])
        slot = gpu.address[:-1]
        assert {c.address: c.class_code for c in gpu.companions} == {slot + str(f): k for f, k in want["companions"].items()}
        assert gpu.passthrough_blocker is None
        assert gpu.passthrough_functions == (gpu.address, *(slot + str(f) for f in sorted(want["companions"])))


@pytest.mark.parametrize("host", FIXTURES)
def test_fixture_and_profile_describe_the_same_machine(host: str) -> None:
    assert load_fixture_dir(HOSTS / host) == load_profile(host)


@pytest.mark.parametrize("host", FIXTURES)
def test_unrelated_pci_functions_are_reported_not_taken_for_gpus(host: str) -> None:
    topo = load_fixture_dir(HOSTS / host)
    classes = {f.class_code >> 8 for f in topo.other_functions}
    assert 0x0604 in classes  # the GPUs' root ports
    assert 0x0108 in classes  # an NVMe drive
    assert classes & {0x0200, 0x0207}  # an Ethernet or InfiniBand NIC
    in_gpu_groups = {a for g in topo.gpus for a in (g.address, *(c.address for c in g.companions))}
    assert not in_gpu_groups & {f.address for f in topo.other_functions}


def test_numa_node_unknown_survives_parsing() -> None:
    topo = load_fixture_dir(HOSTS / "rtx6000-numa-unknown")
    assert len(topo.gpus) == 4
    assert {g.numa_node for g in topo.gpus} == {UNKNOWN_NUMA_NODE}


def test_topology_from_libvirt_matches_the_directory_loader() -> None:
    caps, devices = _read("h100-nps4-8g")
    assert topology_from_libvirt(caps, devices) == load_fixture_dir(HOSTS / "h100-nps4-8g")


# --- libvirt's own schemas: the fixtures must be documents libvirt could have printed -------


def _schema(name: str) -> etree.RelaxNG:
    path = SCHEMAS / name
    assert path.is_file(), f"{path} is missing: install libvirt0 (it ships libvirt's RNG schemas)"
    return etree.RelaxNG(etree.parse(str(path)))


@pytest.mark.parametrize("host", FIXTURES)
def test_fixtures_validate_against_libvirt_schemas(host: str) -> None:
    caps_schema, nodedev_schema = _schema("capability.rng"), _schema("nodedev.rng")
    caps_file = HOSTS / host / "capabilities.xml"
    assert caps_schema.validate(etree.parse(str(caps_file))), f"{caps_file}: {caps_schema.error_log.last_error}"
    device_files = sorted((HOSTS / host / "nodedev").glob("pci_*.xml"))
    assert len(device_files) >= 10
    for f in device_files:
        assert nodedev_schema.validate(etree.parse(str(f))), f"{f}: {nodedev_schema.error_log.last_error}"


# --- IOMMU groups -------------------------------------------------------------------------


def _device(address: str, cls: int, group: int, members: list[str], numa: int | None = 0, product: str = "x") -> str:
    d, b, rest = address.split(":")
    s, f = rest.split(".")
    addrs = "".join(
        "<address domain='0x{}' bus='0x{}' slot='0x{}' function='0x{}'/>".format(*m.replace(".", ":").split(":"))
        for m in members
    )
    numa_xml = "" if numa is None else f"<numa node='{numa}'/>"
    return (
        f"<device><name>pci_{d}_{b}_{s}_{f}</name><parent>computer</parent><capability type='pci'>"
        f"<class>0x{cls:06x}</class><domain>{int(d, 16)}</domain><bus>{int(b, 16)}</bus><slot>{int(s, 16)}</slot>"
        f"<function>{int(f, 16)}</function><product id='0x1234'>{product}</product><vendor id='0x10de'>NVIDIA</vendor>"
        f"<iommuGroup number='{group}'>{addrs}</iommuGroup>{numa_xml}</capability></device>"
    )


def test_group_member_without_xml_blocks_the_gpu() -> None:
    gpu = _device("0000:41:00.0", 0x030200, 7, ["0000:41:00.0", "0000:41:00.1"])
    (found,), _ = parse_node_devices([gpu])
    assert found.companions[0].address == "0000:41:00.1"
    assert found.companions[0].class_code == 0
    assert "0000:41:00.1" in found.passthrough_blocker


def test_gpu_sharing_a_group_with_a_nic_is_blocked_by_it() -> None:
    members = ["0000:af:00.0", "0000:b0:00.0"]
    gpus, others = parse_node_devices(
        [_device("0000:af:00.0", 0x030000, 122, members), _device("0000:b0:00.0", 0x020000, 122, members)]
    )
    assert others == ()
    assert "0000:b0:00.0 (class 020000)" in gpus[0].passthrough_blocker


def test_two_gpus_in_one_group_block_each_other() -> None:
    members = ["0000:41:00.0", "0000:42:00.0"]
    gpus, _ = parse_node_devices([_device(a, 0x030200, 5, members) for a in members])
    assert [g.companions[0].address for g in gpus] == ["0000:42:00.0", "0000:41:00.0"]
    assert all(g.passthrough_blocker for g in gpus)


def test_non_pci_devices_and_missing_numa_are_handled() -> None:
    system = "<device><name>computer</name><capability type='system'><hardware><uuid>1</uuid></hardware></capability></device>"
    gpus, others = parse_node_devices([system, _device("0000:41:00.0", 0x030200, 3, ["0000:41:00.0"], numa=None)])
    assert [g.numa_node for g in gpus] == [UNKNOWN_NUMA_NODE]
    assert others == ()


def test_gpu_without_iommu_group_is_refused() -> None:
    xml = _device("0000:41:00.0", 0x030200, 3, ["0000:41:00.0"]).replace(
        "<iommuGroup number='3'><address domain='0x0000' bus='0x41' slot='0x00' function='0x0'/></iommuGroup>", ""
    )
    xml = xml.replace("id='0x1234'", "id='0x2331'")  # an H100: a model in the catalog
    with pytest.raises(DiscoveryError) as exc:
        parse_node_devices([xml], "host7")
    assert "no IOMMU group" in _one_line_error(exc, "host7")


def test_a_bmc_display_chip_without_iommu_group_is_listed_among_the_other_functions() -> None:
    xml = _device("0000:09:03.0", 0x030000, 3, [], numa=None)
    xml = xml.replace("<iommuGroup number='3'></iommuGroup>", "").replace("id='0x10de'", "id='0x102b'")
    gpus, others = parse_node_devices([xml], "host7")
    assert gpus == () and [f.address for f in others] == ["0000:09:03.0"]


# --- capabilities details -----------------------------------------------------------------

MINIMAL_CAPS = """<capabilities><host><cpu><arch>x86_64</arch></cpu><topology><cells num='1'>
  <cell id='0'><memory unit='GiB'>2</memory><pages unit='GiB' size='1'>1</pages>
    <cpus num='2'><cpu id='0'/><cpu id='1'/></cpus></cell></cells></topology></host></capabilities>"""


def test_capabilities_units_and_missing_cpu_topology() -> None:
    (node,), model, threads = parse_capabilities(MINIMAL_CAPS)
    assert (node.memory_mib, node.hugepages_1g, model, threads) == (2048, 1, "", 1)
    # Without socket/core attributes each thread counts as its own core.
    assert node.cores() == [(0,), (1,)]


# --- malformed input: one line, naming the document ---------------------------------------


@pytest.mark.parametrize(
    ("edit", "complaint"),
    [
        (lambda x: x.replace("</capabilities>", ""), "not well-formed XML"),
        (lambda x: x[: x.index("<topology>\n")] + x[x.index("</topology>") + 11 :], "no NUMA cells"),
        (lambda x: x.replace("<cpus num='40'>", "<nope>", 1).replace("</cpus>", "</nope>", 1), "cell 0 has no <cpus>"),
        (lambda x: x.replace("<cpu id='3' ", "<cpu ", 1), "cell 0 has a <cpu> without an id"),
        (lambda x: x.replace("<memory unit='KiB'>", "<memory unit='KiB'>lots", 1), "not a number"),
        (lambda x: x.replace("<memory unit='KiB'>", "<memory unit='parsecs'>", 1), "unknown unit"),
        (lambda x: x.replace("siblings='3,43'", "siblings='3-x'", 1), "unreadable siblings"),
        (lambda x: x.replace("<capabilities>", "<domain>").replace("</capabilities>", "</domain>"), "expected <capabilities>"),
    ],
)
def test_malformed_capabilities(edit, complaint) -> None:
    caps, _ = _read("rtx6000-2s4g")
    with pytest.raises(DiscoveryError) as exc:
        parse_capabilities(edit(caps), "fixtures/x/capabilities.xml")
    assert complaint in _one_line_error(exc, "fixtures/x/capabilities.xml: ")


def test_gpu_on_a_numa_node_the_host_lacks(tmp_path: Path) -> None:
    host = tmp_path / "host"
    shutil.copytree(HOSTS / "rtx6000-2s4g", host)
    gpu_file = host / "nodedev" / "pci_0000_86_00_0.xml"
    gpu_file.write_text(gpu_file.read_text().replace("<numa node='1'/>", "<numa node='5'/>"))
    with pytest.raises(DiscoveryError) as exc:
        load_fixture_dir(host)
    assert "0000:86:00.0 is on NUMA node 5" in _one_line_error(exc, str(host))

    caps = (host / "capabilities.xml").read_text()
    devices = [f.read_text() for f in (host / "nodedev").glob("*.xml")]
    with pytest.raises(DiscoveryError) as exc:
        topology_from_libvirt(caps, devices, "gpu-host-17")
    assert "NUMA node 5" in _one_line_error(exc, "gpu-host-17")


def test_broken_nodedev_file_is_named(tmp_path: Path) -> None:
    host = tmp_path / "host"
    shutil.copytree(HOSTS / "h100-nps4-8g", host)
    bad = host / "nodedev" / "pci_0000_41_00_0.xml"
    bad.write_text(bad.read_text().replace("<bus>65</bus>", "<bus/>"))
    with pytest.raises(DiscoveryError) as exc:
        load_fixture_dir(host)
    assert "PCI bus is missing" in _one_line_error(exc, f"{bad}: pci_0000_41_00_0")

    bad.write_text("<device><name>")
    with pytest.raises(DiscoveryError) as exc:
        load_fixture_dir(host)
    assert "not well-formed XML" in _one_line_error(exc, str(bad))


def test_same_device_twice_is_refused() -> None:
    _, devices = _read("h100-nps4-8g")
    with pytest.raises(DiscoveryError) as exc:
        parse_node_devices([*devices, devices[0]], "h100 dump")
    assert "described twice" in _one_line_error(exc, "h100 dump")


def test_missing_capabilities_file(tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError) as exc:
        load_fixture_dir(tmp_path)
    assert "capabilities.xml" in _one_line_error(exc, str(tmp_path))
