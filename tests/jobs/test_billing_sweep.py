"""Billing's sweep is one product-wide periodic job (no host), chained like the others."""

from __future__ import annotations

from sqlalchemy import select

from gpucloud.jobs import queue
from gpucloud.jobs.worker import default_handlers, default_periodic
from gpucloud.store.tables import Job
from tests.conftest import make_settings


def test_one_sweep_job_queued_and_the_next_run_chained(store_db, tmp_path):
    settings = make_settings(tmp_path, store_db.url)
    (sweep,) = [p for p in default_periodic(settings) if p.kind == "billing_sweep"]
    assert "billing_sweep" in default_handlers() and sweep.shard_size is None
    with store_db.write() as s:
        (added,) = queue.ensure_periodic(s, [sweep])
        assert s.get(Job, added).host_id is None
    with store_db.write() as s:
        assert queue.ensure_periodic(s, [sweep]) == []  # one at a time
        job = s.scalar(select(Job).where(Job.kind == "billing_sweep"))
        claimed = queue.claim(s, worker="w1", kinds=["billing_sweep"], lease_seconds=30)
        assert claimed is not None and claimed.id == job.id
        queue.complete(s, claimed)
        following = queue.enqueue_next_run(s, claimed, sweep)
        assert following is not None
        row = s.get(Job, following)
        assert row.host_id is None and row.kind == "billing_sweep" and row.state == "queued"
