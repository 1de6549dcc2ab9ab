"""Races between the API and the workers that #12 found on PostgreSQL, made deterministic:
each test holds one side of the race open at the exact point where it used to go wrong."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from sqlalchemy import func, select, text

from gpucloud.catalog import load_catalog
from gpucloud.domain.flags import GPU_INSTANCES
from gpucloud.domain.placement import PlacementRequest
from gpucloud.hypervisor import sim
from gpucloud.hypervisor.profile import load_profile
from gpucloud.jobs import instance_jobs, queue
from gpucloud.jobs.worker import start_workers
from gpucloud.services import accounts, flags, hosts, instances, placing, provisioning
from gpucloud.store import claims as claim_store
from gpucloud.store.tables import Instance, Job
from tests.conftest import make_settings

GPU1 = "g1-gpu-rtx6000-1"
STRANDED_ATTEMPTS = text("SELECT count(*) FROM job_attempts a JOIN jobs j ON j.id = a.job_id "
                         "WHERE a.outcome = 'running' AND j.state <> 'running'")


def _lab(db, tmp_path, **overrides):
    settings = make_settings(tmp_path, db.url, **overrides)
    host = hosts.register_host(db, settings, name="race-a", region="us-east", topology=load_profile("rtx6000-2s4g"),
                               driver="sim", profile="rtx6000-2s4g")
    account = accounts.create_account(db, "race@example.com")
    flags.set_state(db, GPU_INSTANCES, "on", why="GPU plans for everyone in this lab", actor="test")
    return settings, host, account


def _create(db, settings, account, **kw):
    new = instances.NewInstance(type=GPU1, region="us-east", **kw)
    return instances.create_instance(db, settings, account.id, account.username, new, bypass_flags=True)


def _until(check, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _someone_waits_on_a_lock(db) -> bool:
    with db.read() as s:
        return s.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted")) > 0


@pytest.mark.postgres
def test_a_delete_never_cancels_a_job_that_a_worker_has_just_claimed(postgres_db, tmp_path):
    """#12 item 6: the claim commits while the delete waits on the job's row; the delete
    must then leave the running job alone (the delete job queues behind it)."""
    db = postgres_db
    settings, _, account = _lab(db, tmp_path)
    inst = _create(db, settings, account)
    deleter = threading.Thread(target=instances.delete_instance, args=(db, account.id, inst.id, account.username))
    with db.write() as s:  # a worker's claim, not committed yet
        claimed = queue.claim(s, worker="w1", kinds=["create"], lease_seconds=30)
        assert claimed is not None and claimed.instance_id == inst.id
        deleter.start()
        _until(lambda: _someone_waits_on_a_lock(db) or not deleter.is_alive(), "the delete to wait on the job row")
    deleter.join(10)
    with db.read() as s:
        assert s.scalar(STRANDED_ATTEMPTS) == 0
        create_job = s.get(Job, claimed.id)
        assert create_job.state == "running"  # still the worker's, to finish
        kinds = s.execute(select(Job.kind, Job.state).where(Job.instance_id == inst.id).order_by(Job.id)).all()
        assert [tuple(k) for k in kinds] == [("create", "running"), ("delete", "queued")]
        assert s.get(Instance, inst.id).status == "deleting"


@pytest.mark.postgres
def test_a_release_waits_for_the_placement_in_progress_in_its_region(postgres_db, tmp_path):
    """#12 item 7: a delete job giving claims back bumped the host's generation under a
    placement that had just read it, and the create lost its compare-and-swap ("placement
    lost 5 races in a row") with room to spare. Releases now queue behind placements."""
    db = postgres_db
    settings, host, account = _lab(db, tmp_path)
    gone = _create(db, settings, account)
    remover = threading.Thread(target=provisioning.remove_instance, args=(db, gone.id))
    request = PlacementRequest.for_plan(load_catalog().plan(GPU1), "us-east")
    with db.write() as s:  # a placement in progress in us-east
        placing.lock_region(s, "us-east")
        decision = placing.place_new(s, settings, request)
        assert decision.host_id == host.id
        remover.start()
        _until(lambda: _someone_waits_on_a_lock(db) or not remover.is_alive(), "the release to start")
        assert claim_store.claim_host(s, host.id, "us-east", decision.generation) is not None, \
            "the placement lost its compare-and-swap"
    remover.join(10)
    with db.read() as s:
        assert s.get(Instance, gone.id) is None


@pytest.mark.postgres
def test_a_create_racing_its_delete_logs_one_line_and_no_traceback(postgres_db, tmp_path, caplog):
    """#12 item 9: the create job finds its instance being deleted half-way; that is an
    expected outcome, told in one line."""
    db = postgres_db
    settings, _, account = _lab(db, tmp_path, sim_boot_seconds=1.0, worker_poll_seconds=0.02,
                                job_backoff_seconds=0.05, job_backoff_max_seconds=0.1)
    caplog.set_level(logging.INFO)
    worker = start_workers(db, settings, instance_jobs.HANDLERS, concurrency=2, periodic=[])
    try:
        inst = _create(db, settings, account)
        _until(lambda: sim.read_state(settings.data_dir, "race-a")["calls"].get("start", 0) > 0, "the guest to boot")
        instances.delete_instance(db, account.id, inst.id, account.username)

        def gone() -> bool:
            with db.read() as s:
                return s.get(Instance, inst.id) is None and s.scalar(
                    select(func.count()).select_from(Job).where(Job.state.in_(("queued", "running")))) == 0
        _until(gone, "the instance to be deleted", timeout=30)
    finally:
        worker.stop(timeout=10)
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    told = [r.getMessage() for r in caplog.records if "deleted" in r.getMessage() and f"{inst.id}" in r.getMessage()]
    assert len(told) == 1, told
