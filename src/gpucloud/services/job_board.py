"""The job queue as operators watch it: depth, running, failed and queued jobs with their
attempts; and the operator's retry and cancel, each in its own audited transaction."""

from __future__ import annotations

from gpucloud.clock import utcnow
from gpucloud.store import job_listing as q
from gpucloud.store import jobs as queue_q
from gpucloud.store.db import Database
from gpucloud.store.tables import Job, JobAttempt

LISTED = 50
RECENT = 20


def board(db: Database, periodic: tuple[str, ...] = ()) -> dict:
    """Queue depth by kind, counts by state, and newest first (`LISTED` of each): running and
    failed jobs with their attempts, queued work (oldest first), recent successes and
    cancellations. Jobs of the `periodic` kinds (a host sweep per shard of hosts, billing's
    sweep) are always there, so they are summed per kind instead of listed."""
    with db.read() as s:
        depth = sorted(queue_q.due_by_kind(s, utcnow()))
        counts = q.count_by_state(s)
        lists = {
            "running": q.jobs_in_state(s, "running", limit=LISTED),
            "failed": q.jobs_in_state(s, "failed", limit=LISTED),
            "queued": q.jobs_in_state(s, "queued", limit=LISTED, newest_first=False, except_kinds=periodic),
            "succeeded": q.jobs_in_state(s, "succeeded", limit=RECENT, except_kinds=periodic),
            "cancelled": q.jobs_in_state(s, "cancelled", limit=RECENT),
        }
        scheduled = [{"kind": k, "queued": n, "next_due": due} for k, n, due in q.queued_by_kind(s, periodic)]
        every = [j for jobs in lists.values() for j in jobs]
        hosts = q.host_names(s, {j.host_id for j in every if j.host_id})
        attempts = q.attempts_of_jobs(s, [j.id for j in lists["failed"] + lists["running"]])
    views = {state: [{**job_view(j), "host": hosts.get(j.host_id) if j.host_id is not None else None,
                      "attempts": [attempt_view(a) for a in attempts.get(j.id, [])]} for j in jobs]
             for state, jobs in lists.items()}
    return {"depth": depth, "depth_total": sum(n for _, n in depth), "counts": counts, "periodic": scheduled,
            **views}


def retry_job(db: Database, job_id: int, *, actor: str, why: str = "") -> None:
    with db.write() as s:
        queue_q.retry(s, job_id, actor=actor, why=why)


def cancel_job(db: Database, job_id: int, *, actor: str, why: str = "") -> None:
    with db.write() as s:
        queue_q.cancel(s, job_id, actor=actor, why=why)


def job_view(j: Job) -> dict:
    return {"id": j.id, "kind": j.kind, "state": j.state, "attempts_made": j.attempts,
            "max_attempts": j.max_attempts, "progress": j.progress, "last_error": j.last_error,
            "created": j.created_at, "updated": j.updated_at, "finished": j.finished_at, "run_after": j.run_after,
            "instance_id": j.instance_id, "host_id": j.host_id, "lease_owner": j.lease_owner,
            "lease_expires_at": j.lease_expires_at}


def attempt_view(a: JobAttempt) -> dict:
    return {"id": a.id, "worker": a.worker, "started": a.started_at, "ended": a.ended_at,
            "outcome": a.outcome, "error": a.error}
