"""A real `gpucloud worker` killed with SIGKILL in the middle of each kind of instance job:
another worker takes the job over once the lease expires and finishes it, and nothing
leaks: no claim without its instance, no instance without its claims, no duplicated domain."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from gpucloud.catalog import load_catalog
from gpucloud.domain.flags import GPU_INSTANCES
from gpucloud.hypervisor import sim
from gpucloud.hypervisor.profile import load_profile
from gpucloud.services import accounts, flags, hosts, instances
from gpucloud.store.tables import CpuClaim, GpuClaim, Instance, Job, MemoryClaim
from tests.conftest import make_settings
from tests.live import clean_env

BOOT_S = 0.5
# Workers are killed while a hypervisor call hangs (an injected one-shot fault), so the kill
# lands mid-job however slow the machine is; the heir finds the call answering again.
HOST = "crash-a"


@pytest.fixture
def lab(postgres_db, tmp_path):
    settings = make_settings(tmp_path, postgres_db.url, sim_boot_seconds=BOOT_S)
    hosts.register_host(postgres_db, settings, name=HOST, region="us-east", topology=load_profile("rtx6000-2s4g"),
                        driver="sim", profile="rtx6000-2s4g")
    account = accounts.create_account(postgres_db, "crash@example.com")
    flags.set_state(postgres_db, GPU_INSTANCES, "on", why="GPU plans for everyone in this lab", actor="test")
    workers: list[subprocess.Popen] = []

    def worker(name: str) -> subprocess.Popen:
        env = clean_env({"GPUCLOUD_DATABASE_URL": postgres_db.url, "GPUCLOUD_DATA_DIR": str(tmp_path),
                         "GPUCLOUD_JOB_LEASE_SECONDS": "2", "GPUCLOUD_WORKER_POLL_SECONDS": "0.05",
                         "GPUCLOUD_JOB_BACKOFF_SECONDS": "0.1", "GPUCLOUD_SIM_BOOT_SECONDS": str(BOOT_S),
                         "GPUCLOUD_DRIVER_TIMEOUT_SECONDS": "20"})
        proc = subprocess.Popen([sys.executable, "-m", "gpucloud", "worker", "--name", name, "--concurrency", "2"],
                                env=env, stdout=open(tmp_path / f"{name}.log", "w"), stderr=subprocess.STDOUT)
        workers.append(proc)
        return proc

    yield postgres_db, settings, account, worker
    for proc in workers:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def until(check: Callable[[], bool], what: str, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def job_of(db, instance_id: int, kind: str) -> Job | None:
    with db.read() as s:
        return s.scalar(select(Job).where(Job.instance_id == instance_id, Job.kind == kind).order_by(Job.id.desc()))


def status(db, instance_id: int) -> str | None:
    with db.read() as s:
        instance = s.get(Instance, instance_id)
        return instance.status if instance else None


def calls(settings, operation: str) -> int:
    return sim.read_state(settings.data_dir, HOST)["calls"].get(operation, 0)


def settle(db, instance_id: int, wanted: str | None, worker) -> None:
    """Run a worker until the instance rests in `wanted` with no job left, then stop it."""
    proc = worker("helper")
    until(lambda: status(db, instance_id) == wanted and not _open_jobs(db, instance_id), f"{wanted}")
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


def _open_jobs(db, instance_id: int) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(Job).where(Job.instance_id == instance_id,
                                                                    Job.state.in_(("queued", "running"))))


def assert_nothing_leaked(db, settings) -> None:
    catalog = load_catalog()
    with db.read() as s:
        live = {i.id: i for i in s.scalars(select(Instance))}
        for table in (GpuClaim, CpuClaim, MemoryClaim):
            holders = set(s.scalars(select(table.instance_id).distinct()))
            assert holders <= set(live), f"{table.__tablename__} held by instances that are gone"
        for instance in live.values():
            plan = catalog.plan(instance.type_id)
            gpus = s.scalar(select(func.count()).select_from(GpuClaim).where(GpuClaim.instance_id == instance.id))
            cpus = s.scalar(select(func.count()).select_from(CpuClaim).where(CpuClaim.instance_id == instance.id))
            assert (gpus, cpus) == (plan.gpus, plan.vcpus), f"instance {instance.id} holds the wrong claims"
    domains = sim.read_state(settings.data_dir, HOST)["domains"]
    assert sorted(domains) == sorted(f"gpucloud-{i}" for i in live)  # one domain per instance, no strays


def kill_and_take_over(db, settings, worker, instance_id: int, kind: str, operation: str) -> None:
    """Start a worker, let the job reach `operation` (hung), SIGKILL it there, and let a
    second worker finish the job once the lease expires."""
    sim.inject_fault(settings.data_dir, HOST, operation, "hang", times=1)
    before = calls(settings, operation)
    victim = worker("victim")
    until(lambda: calls(settings, operation) > before, f"{kind} to reach {operation}")
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    job = job_of(db, instance_id, kind)
    assert job.state == "running"  # abandoned mid-flight
    heir = worker("heir")
    until(lambda: job_of(db, instance_id, kind).state == "succeeded", f"the {kind} job to succeed")
    heir.send_signal(signal.SIGTERM)
    heir.wait(30)
    with db.read() as s:
        from gpucloud.jobs.queue import attempts

        assert [a.outcome for a in attempts(s, job.id)] == ["lost", "succeeded"]


def create(db, settings, account, **kw):
    new = instances.NewInstance(type="g1-gpu-rtx6000-1", region="us-east", **kw)
    return instances.create_instance(db, settings, account.id, account.username, new, bypass_flags=True)


def test_create_killed_while_starting(lab):
    db, settings, account, worker = lab
    inst = create(db, settings, account)
    kill_and_take_over(db, settings, worker, inst.id, "create", "start")
    assert status(db, inst.id) == "running"
    assert_nothing_leaked(db, settings)


def test_boot_killed_while_starting(lab):
    db, settings, account, worker = lab
    inst = create(db, settings, account, booted=False)
    settle(db, inst.id, "offline", worker)
    instances.boot_instance(db, account.id, inst.id, account.username)
    kill_and_take_over(db, settings, worker, inst.id, "boot", "start")
    assert status(db, inst.id) == "running"
    assert_nothing_leaked(db, settings)


def test_shutdown_killed_while_shutting_down(lab):
    db, settings, account, worker = lab
    inst = create(db, settings, account)
    settle(db, inst.id, "running", worker)
    instances.shutdown_instance(db, account.id, inst.id, account.username)
    kill_and_take_over(db, settings, worker, inst.id, "shutdown", "shutdown")
    assert status(db, inst.id) == "offline"
    assert_nothing_leaked(db, settings)


def test_reboot_killed_while_starting_again(lab):
    db, settings, account, worker = lab
    inst = create(db, settings, account)
    settle(db, inst.id, "running", worker)
    instances.reboot_instance(db, account.id, inst.id, account.username)
    kill_and_take_over(db, settings, worker, inst.id, "reboot", "start")
    assert status(db, inst.id) == "running"
    assert_nothing_leaked(db, settings)


def test_resize_killed_after_the_new_claims_were_written(lab):
    db, settings, account, worker = lab
    inst = create(db, settings, account)
    settle(db, inst.id, "running", worker)
    instances.resize_instance(db, settings, account.id, inst.id, "g1-gpu-rtx6000-2", account.username)
    kill_and_take_over(db, settings, worker, inst.id, "resize", "start")  # after the new claims
    with db.read() as s:
        assert s.get(Instance, inst.id).type_id == "g1-gpu-rtx6000-2"
    assert status(db, inst.id) == "running"
    assert_nothing_leaked(db, settings)


def test_delete_killed_while_undefining(lab):
    db, settings, account, worker = lab
    keep, gone = create(db, settings, account), create(db, settings, account)
    settle(db, gone.id, "running", worker)
    settle(db, keep.id, "running", worker)
    instances.delete_instance(db, account.id, gone.id, account.username)
    kill_and_take_over(db, settings, worker, gone.id, "delete", "undefine")
    assert status(db, gone.id) is None and status(db, keep.id) == "running"
    assert_nothing_leaked(db, settings)
