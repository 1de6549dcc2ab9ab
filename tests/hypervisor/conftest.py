"""Fixtures for the libvirt tests: test-driver hosts, a real libvirtd, and GPU domain specs."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gpucloud.domain.guest import CloudInit, DomainSpec, GuestCell, GuestGpu

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
LIBVIRT_FIXTURES = FIXTURES / "libvirt"
SYSFS_FIXTURES = FIXTURES / "sysfs"
RNG_SCHEMA = Path("/usr/share/libvirt/schemas/domain.rng")
SYSTEM_URI = "qemu:///system"


@pytest.fixture
def test_host_uri() -> str:
    """libvirt's test driver on our GPU host file; every connection starts from the file afresh."""
    return f"test://{LIBVIRT_FIXTURES / 'gpu-host.xml'}"


@pytest.fixture(scope="session")
def libvirtd() -> str:
    """A real libvirtd with the QEMU driver, started by scripts/libvirtd-up.sh.

    A missing daemon fails the test with the script's reason: these tests are never skipped.
    """
    script = REPO / "scripts" / "libvirtd-up.sh"
    try:
        done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{script} did not finish within 120 s")
    if done.returncode != 0:
        pytest.fail(f"{script} failed (rc {done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return SYSTEM_URI


def _cloud_init(name: str) -> CloudInit:
    return CloudInit(hostname=name, root_pass_hash="$6$salt$hash", authorized_keys=("ssh-ed25519 AAAAC3Nz test@ci",))


@pytest.fixture
def two_gpu_spec() -> Callable[..., DomainSpec]:
    """A 2-socket GPU instance as placement would claim it on the test-driver host:
    the RTX 6000 (with its audio function) on host node 0, the H200 on node 1,
    4 vCPUs per node pinned to sibling pairs, 1 GiB pages, emulator on reserved cores."""

    def make(**changes: object) -> DomainSpec:
        name = str(changes.pop("name", f"gpucloud-{uuid.uuid4().int % 10**8}"))
        spec = DomainSpec(
            name=name,
            uuid=str(uuid.uuid4()),
            title="training box",
            vcpu_pins=(2, 66, 3, 67, 34, 98, 35, 99),
            cells=(
                GuestCell(id=0, host_node=0, vcpus=(0, 1, 2, 3), memory_mib=8192, hugepages_1g=True),
                GuestCell(id=1, host_node=1, vcpus=(4, 5, 6, 7), memory_mib=8192, hugepages_1g=True),
            ),
            emulator_cpuset=(0, 64, 32, 96),
            threads_per_core=2,
            gpus=(
                GuestGpu(address="0000:c1:00.0", functions=("0000:c1:00.0", "0000:c1:00.1"), cell=0),
                GuestGpu(address="0000:41:00.0", functions=("0000:41:00.0",), cell=1),
            ),
            image="linode/debian12",
            disk_mib=20480,
            cloud_init=_cloud_init(name),
            domain_type="kvm",
        )
        return _replace(spec, **changes)

    return make


@pytest.fixture
def small_host_spec() -> Callable[..., DomainSpec]:
    """What fits this 2-CPU, 1-node CI machine under TCG: two guest cells, both on host node 0,
    vCPU n pinned to host CPU n, 128 MiB per cell, a stand-in GPU behind each cell's expander."""

    def make(**changes: object) -> DomainSpec:
        name = str(changes.pop("name", f"gpucloud-ci-{uuid.uuid4().int % 10**8}"))
        spec = DomainSpec(
            name=name,
            uuid=str(uuid.uuid4()),
            title="ci guest",
            vcpu_pins=(0, 1),
            cells=(
                GuestCell(id=0, host_node=0, vcpus=(0,), memory_mib=128),
                GuestCell(id=1, host_node=0, vcpus=(1,), memory_mib=128),
            ),
            emulator_cpuset=(0, 1),
            gpus=(
                GuestGpu(address="0000:41:00.0", functions=("0000:41:00.0", "0000:41:00.1"), cell=0),
                GuestGpu(address="0000:c1:00.0", functions=("0000:c1:00.0",), cell=1),
            ),
            image=None,
            disk_mib=64,
            cloud_init=_cloud_init(name),
            domain_type="qemu",
        )
        return _replace(spec, **changes)

    return make


def _replace(spec: DomainSpec, **changes: object) -> DomainSpec:
    from dataclasses import replace

    return replace(spec, **changes)  # type: ignore[arg-type]


@pytest.fixture
def cleanup_domains() -> Iterator[list[tuple[object, str]]]:
    """(driver, domain name) pairs to undefine after the test, whatever happened in it."""
    created: list[tuple[object, str]] = []
    yield created
    for driver, name in created:
        try:
            driver.undefine(name)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - cleanup must not hide the test's own failure
            pass
