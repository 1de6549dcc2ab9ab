"""`gpucloud check`: a healthy fleet passes; each kind of damage is named in one line, on both
databases, and by the command with exit status 1. The damage is done by hand in SQL, the way
a bug or a crash would leave it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, insert, select, update

from gpucloud.clock import utcnow
from gpucloud.hypervisor import sim
from gpucloud.hypervisor.drivers import driver_for
from gpucloud.hypervisor.profile import load_profile
from gpucloud.jobs import host_jobs, instance_jobs
from gpucloud.jobs.worker import start_workers
from gpucloud.services import accounts, hosts, invariants
from gpucloud.store.tables import CpuClaim, CpuRow, GpuClaim, Host, Instance, Job, JobAttempt, MemoryClaim
from tests.conftest import make_settings
from tests.live import run_cli
from tests.services.test_lifecycle import create, wait_for

HANDLERS = {**instance_jobs.HANDLERS, **host_jobs.HANDLERS}


@pytest.fixture
def fleet(store_db, tmp_path):
    """Two running instances (a GPU one and a standard one) on a simulated host, workers stopped."""
    settings = make_settings(tmp_path, store_db.url, worker_poll_seconds=0.02, sim_boot_seconds=0.05)
    hosts.register_host(store_db, settings, name="sim-a", region="us-east", topology=load_profile("rtx6000-2s4g"),
                        driver="sim", profile="rtx6000-2s4g")
    account = accounts.create_account(store_db, "check@example.com")
    worker = start_workers(store_db, settings, HANDLERS, concurrency=2, periodic=[])
    try:
        made = [create(store_db, settings, account), create(store_db, settings, account, plan="g6-standard-2")]
        for inst in made:
            wait_for(store_db, inst.id, "running")
    finally:
        worker.stop(timeout=5)
    return store_db, settings, made


def _check(db, settings) -> list[str]:
    def lister(host):
        return [(d.name, d.state) for d in driver_for(host, settings).list_domains()]

    return [v.line() for v in invariants.check(db, list_domains=lister).violations]


def test_a_healthy_fleet_has_no_violation(fleet):
    db, settings, _ = fleet
    assert _check(db, settings) == []


def test_leaked_and_doubled_claims_are_named(fleet):
    db, settings, (gpu, standard) = fleet
    with db.write() as s:
        s.execute(delete(GpuClaim).where(GpuClaim.instance_id == gpu.id))  # the GPU leaked out of its claim
        spare = s.scalar(select(CpuRow.id).where(CpuRow.host_id == gpu.host_id, CpuRow.reserved.is_(False),
                                                 CpuRow.id.not_in(select(CpuClaim.cpu_id))).limit(1))
        s.execute(insert(CpuClaim).values(cpu_id=spare, instance_id=standard.id, host_id=standard.host_id,
                                          guest_vcpu=99))  # a pinned CPU a shared plan should not hold
    lines = _check(db, settings)
    assert f"claims-not-plan: instance {gpu.id} (g1-gpu-rtx6000-1, running, host {gpu.host_id}) holds 0 GPUs, " \
           "8 pinned CPUs, 32768 MiB, 0 shared vCPUs; it should hold 1 GPUs, 8 pinned CPUs, 32768 MiB, " \
           "0 shared vCPUs" in lines
    assert any(line.startswith(f"claims-not-plan: instance {standard.id} (g6-standard-2") for line in lines)
    assert len(lines) == 2, lines


def test_job_and_attempt_disagreements_are_named(fleet):
    db, settings, (gpu, _) = fleet
    now = utcnow()
    with db.write() as s:
        job = s.scalar(select(Job).where(Job.instance_id == gpu.id, Job.kind == "create"))
        s.add(JobAttempt(job_id=job.id, worker="ghost", outcome="running"))  # issue 12 item 6's leftover
        s.add(JobAttempt(job_id=job.id, worker="again", outcome="succeeded", ended_at=now))
        s.execute(update(Instance).where(Instance.id == gpu.id).values(status="booting"))
        s.add(Job(kind="boot", instance_id=gpu.id, state="running", lease_owner="gone", attempts=1,
                  lease_expires_at=now - timedelta(hours=1)))
    lines = _check(db, settings)
    assert any(line.startswith("attempt-running: attempt ") and f"of job {job.id} (ghost)" in line for line in lines)
    assert f"job-ran-twice: job {job.id} (create) succeeded 2 times" in lines
    assert any(line.startswith("job-attempts: running job ") and "has 0 running attempts" in line for line in lines)
    assert any(line.startswith("job-stuck: job ") and "(boot) is running, lease expired since" in line
               for line in lines)
    with db.write() as s:
        s.execute(delete(Job).where(Job.kind == "boot"))
    assert f"instance-stuck: instance {gpu.id} is booting with no job queued or running" in _check(db, settings)


def test_domains_that_disagree_with_instances_are_named(fleet):
    db, settings, (gpu, standard) = fleet
    with db.read() as s:
        host = s.get(Host, gpu.host_id)
    driver_for(host, settings).destroy(f"gpucloud-{standard.id}")  # powered off behind our back
    state = sim.read_state(settings.data_dir, "sim-a")
    with db.write() as s:
        s.execute(delete(MemoryClaim).where(MemoryClaim.instance_id == gpu.id))
        s.execute(delete(CpuClaim).where(CpuClaim.instance_id == gpu.id))
        s.execute(delete(GpuClaim).where(GpuClaim.instance_id == gpu.id))
        s.execute(delete(Job).where(Job.instance_id == gpu.id))
        s.execute(delete(Instance).where(Instance.id == gpu.id))  # gone, but its guest still runs
    assert f"gpucloud-{gpu.id}" in state["domains"]
    lines = _check(db, settings)
    assert f"stray-domain: gpucloud-{gpu.id} is defined on sim-a but instance {gpu.id} does not exist" in lines
    assert f"domain-state: instance {standard.id} is running but its domain on sim-a is shutoff" in lines


def test_the_command_prints_one_line_per_violation_and_exits_1(fleet):
    db, settings, (gpu, _) = fleet
    env = {"GPUCLOUD_DATABASE_URL": db.url}
    healthy = run_cli(settings.data_dir, "check", env=env)
    assert healthy.stdout.startswith("ok: 2 instances, 1 gpu claims") and "1 hosts asked" in healthy.stdout
    with db.write() as s:
        s.execute(delete(GpuClaim).where(GpuClaim.instance_id == gpu.id))
    broken = run_cli(settings.data_dir, "check", env=env, check=False)
    assert broken.returncode == 1
    assert broken.stdout.splitlines() == [line for line in _check(db, settings)]
    assert len(broken.stdout.splitlines()) == 1 and broken.stdout.startswith("claims-not-plan: ")
