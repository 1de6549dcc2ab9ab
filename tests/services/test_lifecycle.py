"""The instance lifecycle end to end below the API: services write state, claims, events and
jobs; a real worker runs the handlers against simulated hosts; both databases."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from gpucloud.domain.flags import GPU_INSTANCES
from gpucloud.errors import Conflict, GpucloudError
from gpucloud.hypervisor import sim
from gpucloud.hypervisor.profile import load_profile
from gpucloud.jobs import host_jobs, instance_jobs
from gpucloud.jobs.worker import start_workers
from gpucloud.services import accounts, flags, host_health, hosts, instances
from gpucloud.store import jobs as store_jobs
from gpucloud.store.fleet import shard_of
from gpucloud.store.tables import Event, GpuClaim, Host, Instance, Job
from tests.conftest import make_settings

HANDLERS = {**instance_jobs.HANDLERS, **host_jobs.HANDLERS}
GPU1 = "g1-gpu-rtx6000-1"


@pytest.fixture
def env(store_db, tmp_path):
    settings = make_settings(tmp_path, store_db.url, job_lease_seconds=3, worker_poll_seconds=0.02,
                             job_backoff_seconds=0.05, job_backoff_max_seconds=0.1, sim_boot_seconds=0.05,
                             driver_timeout_seconds=0.5, host_down_after_missed=2, job_max_attempts=3)
    host = hosts.register_host(store_db, settings, name="sim-a", region="us-east",
                               topology=load_profile("rtx6000-2s4g"), driver="sim", profile="rtx6000-2s4g")
    account = accounts.create_account(store_db, "lab@example.com", staff=True)
    flags.set_state(store_db, GPU_INSTANCES, "staff", why="staff try GPU plans", actor="test")
    worker = start_workers(store_db, settings, HANDLERS, concurrency=2, periodic=[])
    yield store_db, settings, host, account
    worker.stop(timeout=5)


def wait_for(db, instance_id: int, status: str | None, timeout: float = 20) -> Instance | None:
    """Until the instance reaches `status` (None: until it is gone) and no job of it is left."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.read() as s:
            instance = s.get(Instance, instance_id)
            open_jobs = s.scalar(select(func.count()).select_from(Job).where(
                Job.instance_id == instance_id, Job.state.in_(("queued", "running"))))
        if open_jobs == 0 and (instance.status if instance else None) == status:
            return instance
        time.sleep(0.05)
    raise AssertionError(f"instance {instance_id} is {instance.status if instance else 'gone'}, not {status}")


def create(db, settings, account, plan=GPU1, **kw):
    new = instances.NewInstance(type=plan, region="us-east", image="linode/debian12",
                                root_pass="aComplex@Password123", **kw)
    return instances.create_instance(db, settings, account.id, account.username, new, bypass_flags=True)


def domains(settings, host="sim-a") -> dict:
    return sim.read_state(settings.data_dir, host)["domains"]


def events_of(db, instance_id: int) -> list[tuple[str, str, int]]:
    with db.read() as s:
        rows = s.scalars(select(Event).where(Event.entity_id == instance_id).order_by(Event.id))
        return [(e.action, e.status, e.percent_complete) for e in rows]


def test_create_shutdown_boot_reboot_resize_delete(env):
    db, settings, host, account = env
    inst = create(db, settings, account)
    assert inst.status == "provisioning"
    wait_for(db, inst.id, "running")
    assert domains(settings)[f"gpucloud-{inst.id}"]["state"] == "running"

    instances.shutdown_instance(db, account.id, inst.id, account.username)
    wait_for(db, inst.id, "offline")
    assert domains(settings)[f"gpucloud-{inst.id}"]["state"] == "shutoff"
    instances.boot_instance(db, account.id, inst.id, account.username)
    wait_for(db, inst.id, "running")
    instances.reboot_instance(db, account.id, inst.id, account.username)
    wait_for(db, inst.id, "running")

    instances.resize_instance(db, settings, account.id, inst.id, "g1-gpu-rtx6000-2", account.username)
    resized = wait_for(db, inst.id, "running")
    assert resized.type_id == "g1-gpu-rtx6000-2"
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(GpuClaim).where(GpuClaim.instance_id == inst.id)) == 2
    domain = domains(settings)[f"gpucloud-{inst.id}"]
    node_of = {g["address"]: n["index"] for n in hosts.host_detail(db, host.id)["nodes"] for g in n["gpus"]}
    assert domain["vcpus"] == 16 and len(domain["gpus"]) == 2
    assert len({node_of[a] for a in domain["gpus"]}) == 1  # NUMA-strict: both GPUs from one node

    instances.delete_instance(db, account.id, inst.id, account.username)
    wait_for(db, inst.id, None)
    assert f"gpucloud-{inst.id}" not in domains(settings)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(GpuClaim)) == 0
    assert [(a, st, p) for a, st, p in events_of(db, inst.id)] == [
        ("linode_create", "finished", 100), ("linode_shutdown", "finished", 100), ("linode_boot", "finished", 100),
        ("linode_reboot", "finished", 100), ("linode_resize", "finished", 100), ("linode_delete", "finished", 100)]


def test_an_instance_with_work_in_flight_is_busy(env):
    db, settings, host, account = env
    sim.inject_fault(settings.data_dir, "sim-a", "start", "hang", times=1)  # keep the create job running
    inst = create(db, settings, account)
    with pytest.raises(Conflict, match="Linode busy."):
        instances.shutdown_instance(db, account.id, inst.id, account.username)
    wait_for(db, inst.id, "running")


def test_created_offline_when_not_booted(env):
    db, settings, host, account = env
    inst = create(db, settings, account, booted=False)
    wait_for(db, inst.id, "offline")
    assert domains(settings)[f"gpucloud-{inst.id}"]["state"] == "shutoff"


def test_a_transient_fault_is_retried_and_a_lasting_one_fails_with_its_reason(env):
    db, settings, host, account = env
    sim.inject_fault(settings.data_dir, "sim-a", "define", "fail", times=1)
    first = create(db, settings, account)
    wait_for(db, first.id, "running")

    sim.inject_fault(settings.data_dir, "sim-a", "start", "fail")
    second = create(db, settings, account)
    failed = wait_for(db, second.id, "failed")
    assert failed.status_reason  # the driver's reason, readable
    action, status, _ = events_of(db, second.id)[0]
    assert (action, status) == ("linode_create", "failed")
    sim.clear_faults(settings.data_dir, "sim-a")
    instances.boot_instance(db, account.id, second.id, account.username)  # failed instances can be booted again
    wait_for(db, second.id, "running")


def test_resize_without_room_keeps_the_plan_and_says_so(env):
    db, settings, host, account = env
    keep = create(db, settings, account, plan="g1-gpu-rtx6000-2")
    grow = create(db, settings, account)
    wait_for(db, keep.id, "running")
    wait_for(db, grow.id, "running")
    with pytest.raises(GpucloudError, match="No capacity"):
        instances.resize_instance(db, settings, account.id, grow.id, "g1-gpu-rtx6000-4", account.username)
    assert wait_for(db, grow.id, "running").type_id == GPU1


def test_host_down_and_back(env):
    db, settings, host, account = env
    inst = create(db, settings, account)
    wait_for(db, inst.id, "running")
    sim.inject_fault(settings.data_dir, "sim-a", "list_domains", "unreachable")
    for _ in range(2):
        sweep(db, settings, host.id)
    with db.read() as s:
        assert s.get(Host, host.id).status == "down"
        down = s.get(Instance, inst.id)
        assert (down.status, down.status_reason) == ("offline", host_health.HOST_UNREACHABLE)
    with pytest.raises(GpucloudError, match="No capacity"):
        create(db, settings, account)  # a down host takes nothing new

    sim.clear_faults(settings.data_dir, "sim-a")
    sweep(db, settings, host.id)
    with db.read() as s:
        assert s.get(Host, host.id).status == "active"
    wait_for(db, inst.id, "running")  # reconciled: the guest kept running


def test_claims_stay_until_the_host_confirms_the_guest_is_gone(env):
    db, settings, host, account = env
    inst = create(db, settings, account)
    wait_for(db, inst.id, "running")
    sim.inject_fault(settings.data_dir, "sim-a", "destroy", "unreachable")
    instances.delete_instance(db, account.id, inst.id, account.username)
    deleting = wait_for(db, inst.id, "deleting", timeout=30)  # the job gave up; the instance stays
    assert deleting is not None
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(GpuClaim).where(GpuClaim.instance_id == inst.id)) == 1
    hosts.set_host_status(db, host.id, "down", why="PDU failure")
    assert host_health.declare_lost(db, host.id, why="motherboard dead", actor="ops") == 1
    with db.read() as s:
        assert s.get(Instance, inst.id) is None
        assert s.scalar(select(func.count()).select_from(GpuClaim)) == 0


def sweep(db, settings, host_id: int) -> None:
    """One host sweep of the host's shard, as the scheduler queues it, and what it starts."""
    with db.write() as s:
        store_jobs.enqueue(s, kind="host_sweep", payload={"shard": shard_of(host_id, settings.host_sweep_shard_size)},
                           max_attempts=1)
    _wait_jobs_done(db)


def _wait_jobs_done(db, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.read() as s:
            if s.scalar(select(func.count()).select_from(Job).where(Job.state.in_(("queued", "running")))) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("jobs still open")
