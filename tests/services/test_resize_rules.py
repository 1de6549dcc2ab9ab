"""A resize the API accepts is one the resize job carries out: the pre-check and the job
place with the same rules (`services.placing.place_resized`), the libvirt same-host rule
included."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select, update

from gpucloud.domain.flags import GPU_INSTANCES
from gpucloud.errors import GpucloudError
from gpucloud.hypervisor.profile import load_profile
from gpucloud.jobs import instance_jobs
from gpucloud.jobs.worker import start_workers
from gpucloud.services import accounts, flags, hosts, instances, provisioning
from gpucloud.services.placing import STAYS_ON_ITS_HOST
from gpucloud.store.tables import Instance, Job
from tests.conftest import make_settings

PROFILE = "rtx6000-2s4g"  # 4 GPUs, 2 per NUMA node


@pytest.fixture
def lab(store_db, tmp_path):
    settings = make_settings(tmp_path, store_db.url, worker_poll_seconds=0.02, sim_boot_seconds=0.05,
                             job_backoff_seconds=0.05, job_backoff_max_seconds=0.1)
    account = accounts.create_account(store_db, "resize@example.com")
    flags.set_state(store_db, GPU_INSTANCES, "on", why="GPU plans for everyone in this lab", actor="test")
    return store_db, settings, account


def _host(db, settings, name: str, driver: str) -> int:
    uri = f"qemu+tcp://{name}.invalid/system" if driver == "libvirt" else None
    return hosts.register_host(db, settings, name=name, region="us-east", topology=load_profile(PROFILE),
                               driver=driver, uri=uri, profile=PROFILE).id


def _create(db, settings, account, plan: str, host_id: int) -> Instance:
    new = instances.NewInstance(type=plan, region="us-east", host_id=host_id, booted=False)
    return instances.create_instance(db, settings, account.id, account.username, new, bypass_flags=True)


def _as_if_created(db, instance_id: int) -> None:
    """No worker drives the libvirt hosts of these tests: the create job is taken as done."""
    with db.write() as s:
        s.execute(update(Job).where(Job.instance_id == instance_id).values(state="succeeded"))
        s.get(Instance, instance_id).status = "offline"


def _settled(db, instance_id: int, timeout: float = 20) -> Instance:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.read() as s:
            busy = s.scalar(select(func.count()).select_from(Job).where(
                Job.instance_id == instance_id, Job.state.in_(("queued", "running"))))
            found = s.get(Instance, instance_id)
        if not busy and found.status in ("running", "offline", "failed"):
            return found
        time.sleep(0.05)
    raise AssertionError(f"instance {instance_id} did not settle")


def test_a_resize_that_must_move_is_accepted_and_carried_out_on_simulated_hosts(lab):
    db, settings, account = lab
    first, second = _host(db, settings, "sim-a", "sim"), _host(db, settings, "sim-b", "sim")
    worker = start_workers(db, settings, instance_jobs.HANDLERS, concurrency=2, periodic=[])
    try:
        grow = _create(db, settings, account, "g1-gpu-rtx6000-1", first)
        _create(db, settings, account, "g1-gpu-rtx6000-1", first)  # its host cannot give it 4 GPUs now
        _settled(db, grow.id)
        instances.resize_instance(db, settings, account.id, grow.id, "g1-gpu-rtx6000-4", account.username)
        resized = _settled(db, grow.id)
    finally:
        worker.stop(timeout=10)
    assert (resized.status, resized.type_id, resized.host_id) == ("offline", "g1-gpu-rtx6000-4", second)


def test_a_libvirt_guest_that_would_have_to_move_is_refused_up_front(lab):
    db, settings, account = lab
    first = _host(db, settings, "kvm-a", "libvirt")
    _host(db, settings, "kvm-b", "libvirt")  # room there, but the disk cannot follow yet
    grow = _create(db, settings, account, "g1-gpu-rtx6000-1", first)
    _create(db, settings, account, "g1-gpu-rtx6000-1", first)
    with pytest.raises(GpucloudError) as refused:
        instances.resize_instance(db, settings, account.id, grow.id, "g1-gpu-rtx6000-4", account.username)
    assert STAYS_ON_ITS_HOST in refused.value.reason
    assert provisioning.resize_claims(db, settings, grow.id, "g1-gpu-rtx6000-4") is None  # the job agrees


def test_a_libvirt_guest_that_fits_on_its_host_is_accepted_and_resized_there(lab):
    db, settings, account = lab
    first = _host(db, settings, "kvm-a", "libvirt")
    _host(db, settings, "kvm-b", "libvirt")
    grow = _create(db, settings, account, "g1-gpu-rtx6000-1", first)
    _as_if_created(db, grow.id)
    instances.resize_instance(db, settings, account.id, grow.id, "g1-gpu-rtx6000-2", account.username)
    assert provisioning.resize_claims(db, settings, grow.id, "g1-gpu-rtx6000-2") == first  # what the job does
    with db.read() as s:
        assert s.get(Instance, grow.id).type_id == "g1-gpu-rtx6000-2"
