"""`host inspect` over fixture sysfs trees (tests/fixtures/sysfs, written by make_trees.py)."""

from __future__ import annotations

import pytest

from gpucloud.hypervisor.preflight import FAIL, INFO, PASS, WARN, format_report, host_ready, run_preflight

from .conftest import SYSFS_FIXTURES

GPUS = ("0000:17:00.0", "0000:3d:00.0", "0000:99:00.0", "0000:ba:00.0")


def inspect(tree: str) -> dict[str, object]:
    return {c.name: c for c in run_preflight(SYSFS_FIXTURES / tree)}


def statuses(checks: dict) -> dict[str, str]:
    return {name: c.status for name, c in checks.items()}


def not_passing(checks: dict) -> dict[str, str]:
    return {name: c.status for name, c in checks.items() if c.status != PASS}


def test_a_prepared_two_socket_host_passes_everything():
    checks = inspect("good-2s-4gpu")
    assert not_passing(checks) == {}
    assert host_ready(list(checks.values()))
    assert [checks[f"GPU {g} NUMA node"].detail for g in GPUS] == ["node 0", "node 0", "node 1", "node 1"]
    assert checks["GPU 0000:ba:00.0 IOMMU group"].detail.startswith("group 70 is viable")
    assert "0000:b9:00.0 bridge" in checks["GPU 0000:ba:00.0 IOMMU group"].detail
    assert "0000:17:00.1 companion" in checks["GPU 0000:17:00.0 IOMMU group"].detail
    assert checks["1 GiB hugepages node1"].detail == "480 reserved, 476 free"
    assert checks["IOMMU"].detail == "on: 7 groups (intel_iommu=on iommu=pt)"
    assert format_report(list(checks.values())).endswith("READY for GPU passthrough (0 warning(s))")


def test_iommu_off_fails_with_the_kernel_parameters_for_this_cpu():
    checks = inspect("iommu-off")
    assert checks["IOMMU"].status == FAIL
    assert "amd_iommu=on iommu=pt" in checks["IOMMU"].fix and "intel_iommu" not in checks["IOMMU"].fix
    assert all(checks[f"GPU {g} IOMMU group"].status == FAIL for g in GPUS)
    assert all(checks[f"GPU {g} driver"].status == PASS for g in GPUS)  # unbound is fine: libvirt binds vfio-pci
    assert statuses(checks)["1 GiB hugepages node0"] == WARN
    assert "hugepagesz=1G" in checks["1 GiB hugepages node0"].fix
    assert not host_ready(list(checks.values()))


def test_a_gpu_without_a_numa_node_fails_on_a_multi_node_host():
    checks = inspect("gpu-numa-unknown")
    assert not_passing(checks) == {"GPU 0000:99:00.0 NUMA node": FAIL}
    assert "SRAT" in checks["GPU 0000:99:00.0 NUMA node"].fix


def test_a_nic_in_the_gpus_iommu_group_makes_it_not_viable():
    checks = inspect("group-not-viable")
    assert not_passing(checks) == {"GPU 0000:17:00.0 IOMMU group": FAIL}
    check = checks["GPU 0000:17:00.0 IOMMU group"]
    assert "0000:17:00.2 [8086:1533] class 020000, driver igb" in check.detail
    assert "ACS" in check.fix


def test_a_gpu_bound_to_nvidia_fails_with_the_vfio_binding_recipe():
    checks = inspect("gpu-bound-nvidia")
    assert not_passing(checks) == {"GPU 0000:3d:00.0 driver": FAIL}
    check = checks["GPU 0000:3d:00.0 driver"]
    assert check.detail.startswith("bound to nvidia")
    assert "options vfio-pci ids=10de:10f7,10de:1e30" in check.fix  # the GPU and its audio function
    assert "softdep nvidia pre: vfio-pci" in check.fix
    assert "echo vfio-pci > /sys/bus/pci/devices/0000:3d:00.0/driver_override" in check.fix
    # its audio function is still on snd_hda_intel: libvirt detaches it with the GPU, so the group is viable
    assert checks["GPU 0000:3d:00.0 IOMMU group"].status == PASS


def test_the_report_shows_every_check_and_the_fix_under_failures():
    checks = run_preflight(SYSFS_FIXTURES / "gpu-bound-nvidia")
    report = format_report(checks)
    lines = report.splitlines()
    assert len([line for line in lines if line.startswith(("PASS", "WARN", "FAIL"))]) == len(checks)
    failing = next(i for i, line in enumerate(lines) if line.startswith("FAIL"))
    assert "GPU 0000:3d:00.0 driver" in lines[failing] and "fix: bind it to vfio-pci" in lines[failing + 1]
    assert lines[-1] == "NOT READY: 1 check(s) failed, 0 warning(s)"


def test_an_empty_root_reports_everything_missing(tmp_path):
    checks = {c.name: c for c in run_preflight(tmp_path)}
    assert statuses(checks) == {
        "KVM": FAIL, "IOMMU": FAIL, "vfio-pci": FAIL, "GPUs": WARN, "1 GiB hugepages": WARN,
    }  # fmt: skip


def test_a_root_that_is_not_a_directory_is_refused(tmp_path):
    with pytest.raises(NotADirectoryError, match="is not a directory"):
        run_preflight(tmp_path / "missing")


def test_an_unknown_numa_node_is_only_a_warning_on_a_single_node_host(tmp_path):
    from dataclasses import replace

    from tests.fixtures.sysfs import make_trees

    one_node = replace(make_trees.GOOD, nodes={0: "0-63"}, hugepages={0: (4, 4)})
    one_node = make_trees._retarget(one_node, "0000:99:00.0", numa=-1)
    make_trees.write(tmp_path / "host", one_node)
    checks = {c.name: c for c in run_preflight(tmp_path / "host")}
    assert not_passing(checks) == {"GPU 0000:99:00.0 NUMA node": WARN}


def test_a_bmc_display_chip_is_listed_for_information_and_never_fails_the_host(tmp_path):
    from dataclasses import replace

    from tests.fixtures.sysfs import make_trees

    matrox = make_trees.Dev("0000:09:03.0", "0x030000", "0x102b", "0x0532", -1, None, "mgag200")
    make_trees.write(tmp_path / "host", replace(make_trees.GOOD, devices=make_trees.GOOD.devices + (matrox,)))
    checks = {c.name: c for c in run_preflight(tmp_path / "host")}
    assert not_passing(checks) == {"display 0000:09:03.0": INFO}
    assert "102b:0532 is not a GPU model in the catalog (Matrox" in checks["display 0000:09:03.0"].detail
    assert "GPU 0000:09:03.0 NUMA node" not in checks and "GPU 0000:09:03.0 IOMMU group" not in checks
    assert format_report(list(checks.values())).endswith("READY for GPU passthrough (0 warning(s))")


def test_memory_only_nodes_are_counted_apart_and_need_no_hugepages(tmp_path):
    from dataclasses import replace

    from tests.fixtures.sysfs import make_trees

    nodes = {0: "0-31,64-95", 1: "32-63,96-127", 2: "", 3: ""}
    make_trees.write(tmp_path / "host", replace(make_trees.GOOD, nodes=nodes))
    checks = {c.name: c for c in run_preflight(tmp_path / "host")}
    assert not_passing(checks) == {}
    assert checks["NUMA"].detail.startswith("2 NUMA nodes (+2 memory-only): node0 64 CPUs, node1 64 CPUs; memory-only")
    assert "1 GiB hugepages node2" not in checks


def test_a_gpu_on_a_memory_only_node_is_a_warning_with_no_local_cores(tmp_path):
    from dataclasses import replace

    from tests.fixtures.sysfs import make_trees

    host = replace(make_trees.GOOD, nodes={0: "0-31,64-95", 1: "32-63,96-127", 2: ""})
    make_trees.write(tmp_path / "host", make_trees._retarget(host, "0000:99:00.0", numa=2))
    checks = {c.name: c for c in run_preflight(tmp_path / "host")}
    assert not_passing(checks) == {"GPU 0000:99:00.0 NUMA node": WARN}
    assert checks["GPU 0000:99:00.0 NUMA node"].detail == "node 2, a memory-only node: no cores are local to it"
