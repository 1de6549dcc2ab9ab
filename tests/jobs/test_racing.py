"""Workers racing on PostgreSQL: no job runs twice at once, and one instance's jobs run one
at a time in order, across real processes and in the narrowest interleaving we can build."""

from __future__ import annotations

import json
import random
import time
from itertools import pairwise

from sqlalchemy import select

from gpucloud.jobs import queue
from gpucloud.store import jobs as store_jobs
from gpucloud.store.tables import Job, JobAttempt


def claim(db, worker: str):
    with db.write() as s:
        return queue.claim(s, worker=worker, kinds=["work"], lease_seconds=30)


def test_an_earlier_job_committed_late_never_runs_beside_a_later_one(postgres_db):
    """Job 1 of an instance commits after job 2 was claimed, while that claim is still in
    flight: the second claimer sees job 1 as the instance's head and job 2 as merely queued.
    Only the instance's advisory lock and the re-check keep it from starting job 1."""
    slow_writer = postgres_db.write()
    s1 = slow_writer.__enter__()
    first = store_jobs.enqueue(s1, kind="work", instance_id=9)  # id taken, not yet committed
    with postgres_db.write() as s:
        second = store_jobs.enqueue(s, kind="work", instance_id=9)

    claimer_a = postgres_db.write()
    sa = claimer_a.__enter__()
    held = queue.claim(sa, worker="a", kinds=["work"], lease_seconds=30)
    assert held.id == second  # job 1 is invisible to A
    slow_writer.__exit__(None, None, None)  # job 1 commits while A's claim is in flight

    assert claim(postgres_db, "b") is None  # B would start job 1 beside job 2 without the lock
    claimer_a.__exit__(None, None, None)
    assert claim(postgres_db, "b") is None  # job 2 runs: job 1 waits for it
    with postgres_db.write() as s:
        queue.complete(s, held)
    assert claim(postgres_db, "b").id == first


def test_worker_processes_race_over_many_jobs(postgres_db, pg_url, spawn_worker, tmp_path):
    workers = [spawn_worker(pg_url, name=f"racer-{i}", concurrency=3, lease=10) for i in range(3)]
    for w in workers:
        w.wait_ready()
    log = tmp_path / "runs.jsonl"
    rng = random.Random(5)
    order = [i % 10 for i in range(50)] + [None] * 10  # 10 instances x 5 jobs, 10 free-standing
    rng.shuffle(order)
    with postgres_db.write() as s:  # all at once, so every worker starts racing together
        ids = [store_jobs.enqueue(s, kind="record", instance_id=None if i is None else 100 + i,
                             payload={"log": str(log), "seconds": rng.uniform(0.005, 0.04)}) for i in order]

    deadline = time.monotonic() + 60
    while True:
        with postgres_db.read() as s:
            states = s.scalars(select(Job.state).where(Job.id.in_(ids))).all()
        if all(state == "succeeded" for state in states):
            break
        assert time.monotonic() < deadline, f"jobs still unfinished: {sorted(set(states))}"
        time.sleep(0.1)
    for w in workers:
        assert w.stop() == 0, w.text()

    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(r["job"] for r in runs) == sorted(ids)  # each job ran exactly once
    by_instance: dict[int, list[dict]] = {}
    for run in runs:
        if run["instance"] is not None:
            by_instance.setdefault(run["instance"], []).append(run)
    assert len(by_instance) == 10
    for instance, instance_runs in by_instance.items():
        instance_runs.sort(key=lambda r: r["start"])
        assert [r["job"] for r in instance_runs] == sorted(r["job"] for r in instance_runs), instance
        for before, after in pairwise(instance_runs):
            assert before["end"] <= after["start"], f"instance {instance}: {before['job']} and {after['job']} overlap"
    assert len({r["pid"] for r in runs}) >= 2  # they really raced
    with postgres_db.read() as s:
        attempts = s.execute(select(JobAttempt.job_id, JobAttempt.outcome).where(JobAttempt.job_id.in_(ids))).all()
    assert sorted(attempts) == sorted((j, "succeeded") for j in ids)
