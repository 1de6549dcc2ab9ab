"""The worker runtime: claim jobs, run their handlers on threads, keep their leases alive.

One `Worker` runs up to `concurrency` jobs at once, each on its own thread (handlers
mostly wait on hypervisors). Beside them:
- a dispatcher thread claims jobs while slots are free, reaps expired leases and keeps
  the periodic jobs scheduled;
- a heartbeat thread renews every running job's lease each third of the lease; a renewal
  that fails means another worker took the job over, and the handler learns it through
  `JobContext` (`LeaseLost` from `progress`, `sleep`, `check`). Whatever the handler does,
  a worker without the lease writes nothing: the queue compares and sets on the lease.

`stop()` stops claiming, lets running jobs finish (up to a timeout) and returns; jobs
still running then are abandoned to their leases, which expire, and another worker
takes them over. Handlers are therefore idempotent.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from gpucloud.clock import utcnow
from gpucloud.config import Settings
from gpucloud.errors import GpucloudError
from gpucloud.hypervisor.base import HypervisorDriver
from gpucloud.jobs import billing_jobs, host_jobs, instance_jobs, queue
from gpucloud.jobs.context import JobContext
from gpucloud.jobs.metrics import JOB_DURATION, LEASE_EXPIRIES
from gpucloud.jobs.queue import Backoff, JobError, LeaseLost, PeriodicJob
from gpucloud.jobs.wakeup import IDLE_SECONDS, SCHEDULE_SECONDS, Wakeup
from gpucloud.store import jobs as jobs_q
from gpucloud.store.db import Database

log = logging.getLogger(__name__)

Handler = Callable[[JobContext], object]
INTERNAL_ERROR = "An internal error stopped the operation."


def default_handlers() -> dict[str, Handler]:
    """The handlers of every job kind the product defines, as `gpucloud worker` and
    `gpucloud serve` run them: the instance lifecycle, the periodic host sweep and the
    reconciliation it starts, and billing's product-wide sweep."""
    return {**instance_jobs.HANDLERS, **host_jobs.HANDLERS, **billing_jobs.HANDLERS}


def default_periodic(settings: Settings) -> list[PeriodicJob]:
    """The host sweep, one job per shard of hosts (health checks, down hosts too so they can
    come back, and reconciliation); and one product-wide: billing's sweep (closing last
    month, trials). A worker schedules only the kinds it has handlers for."""
    return [
        PeriodicJob("host_sweep", settings.host_check_seconds, host_jobs.SWEPT,
                    shard_size=settings.host_sweep_shard_size),
        PeriodicJob("billing_sweep", settings.billing_sweep_seconds),
    ]


def explain(exc: BaseException) -> tuple[str, str, bool, float | None]:
    """(error for operators, message for the customer, retryable, delay or None) of a
    handler's exception. `JobError`s and driver errors carry a readable reason and say
    whether to retry; other `GpucloudError`s are refusals that retrying will not change;
    anything else is a bug or a transient fault (a database hiccup): retried, and the
    customer reads a generic message."""
    if isinstance(exc, JobError):
        return exc.reason, exc.reason, exc.retryable, exc.delay_s
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and hasattr(exc, "retryable"):  # DriverError and its family
        return reason, reason, bool(exc.retryable), None
    if isinstance(exc, GpucloudError):
        return exc.reason, exc.reason, False, None
    return f"{type(exc).__name__}: {exc}", INTERNAL_ERROR, True, None


class Worker:
    """Runs jobs of the kinds in `handlers`. Also the handle `start_workers` returns."""

    def __init__(self, db: Database, settings: Settings, handlers: Mapping[str, Handler], *,
                 concurrency: int | None = None, name: str | None = None,
                 periodic: list[PeriodicJob] | None = None, backoff: Backoff | None = None):
        bad = [k for k, h in handlers.items() if not isinstance(k, str) or not callable(h)]
        if bad:
            raise ValueError(f"handlers must map job kinds to callables; bad entries: {bad!r}")
        self.db, self.settings = db, settings
        self.handlers = dict(handlers)
        self.first_steps = {kind: step for kind, h in self.handlers.items() if (step := queue.step_of(h))}
        self.concurrency = concurrency if concurrency is not None else settings.worker_concurrency
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {self.concurrency}")
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
        wanted = default_periodic(settings) if periodic is None else periodic
        self.periodic = {p.kind: p for p in wanted if p.kind in self.handlers}
        self.backoff = backoff or Backoff(settings.job_backoff_seconds, settings.job_backoff_max_seconds)
        self.lease_seconds = settings.job_lease_seconds
        self._lock = threading.Lock()
        self._running: dict[int, tuple[JobContext, threading.Thread]] = {}
        self._drivers: dict[int, HypervisorDriver] = {}  # by host id, for every job of this worker
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._behind = True  # due jobs were left for want of a slot: a finishing job wakes the dispatcher
        self._wakeup = Wakeup(db, self._wake)
        self._heartbeat_stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Worker:
        if self._threads:
            raise RuntimeError("worker already started")
        self._wakeup.start()
        for target, label in ((self._dispatch, "dispatch"), (self._heartbeat, "heartbeat")):
            thread = threading.Thread(target=target, name=f"jobs-{label}", daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("worker %s started: %d slots, kinds %s", self.name, self.concurrency,
                 ", ".join(sorted(self.handlers)) or "(none)")
        return self

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def running_jobs(self) -> list[int]:
        with self._lock:
            return sorted(self._running)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop claiming and wait up to `timeout` seconds (None: as long as it takes) for
        running jobs. True when none was left running."""
        self._stopping.set()
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._threads:
            self._threads[0].join(timeout)  # no claim is in flight after this
        with self._lock:
            threads = [t for _, t in self._running.values()]
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        left = self.running_jobs()
        self._wakeup.stop(timeout)
        self._heartbeat_stop.set()
        for thread in self._threads[1:]:
            thread.join(timeout)
        if left:
            log.warning("worker %s stopped with jobs %s still running; their leases will expire", self.name, left)
        else:
            log.info("worker %s stopped", self.name)
        return not left

    # -- dispatcher -------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Claim, reap and schedule in rounds. Polling (SQLite, or while the listening
        connection is down): a round every `worker_poll_seconds`. Listening: a round when a
        notification or a finishing job wakes it, or at the next moment it knows of (a queued
        job due, a lease running out, the scheduler's turn), at most `IDLE_SECONDS` apart;
        one read tells it those moments, and it claims only when something is due."""
        poll = self.settings.worker_poll_seconds
        reap_every = max(poll, min(self.lease_seconds / 2, 5.0))
        periods = [p.every_seconds for p in self.periodic.values()]
        next_reap = next_schedule = 0.0
        failures = 0
        while not self._stopping.is_set():
            self._wake.clear()
            wait = poll
            try:
                listening = self._wakeup.listening
                now = time.monotonic()
                if self.periodic and now >= next_schedule:
                    self._schedule()
                    next_schedule = now + min([SCHEDULE_SECONDS if listening else 5.0] + periods)
                if listening:
                    wait = self._listening_round(poll, next_schedule if self.periodic else math.inf)
                else:
                    self._behind = True  # polling: every finishing job starts a round
                    if now >= next_reap:
                        self._reap()
                        next_reap = now + reap_every
                    while not self._stopping.is_set() and self._free_slots() and self._claim_one():
                        pass
                failures = 0
            except Exception:  # the database may be briefly away; try again, slower
                failures += 1
                log.exception("worker %s: dispatch round failed (%d in a row)", self.name, failures)
            self._wake.wait(max(0.0, min(wait * 2 ** failures, 5.0 if failures else wait)))

    def _listening_round(self, poll: float, next_schedule: float) -> float:
        """One round while notifications wake us: reap what expired, claim what is due (as
        many as are due and fit), and return how long to sleep. A lease that another worker
        takes after this read runs out `lease_seconds` from now at the soonest, so sleeping
        at most that long keeps reaping timely."""
        with self.db.read() as s:
            now = utcnow()
            m = jobs_q.moments(s, list(self.handlers), now)
        mono = time.monotonic()

        def at(moment: datetime | None) -> float:
            return math.inf if moment is None else mono + max(0.0, (moment - now).total_seconds())

        if m.next_expiry is not None and m.next_expiry <= now:
            self._reap()
            return 0.0  # look again: what was reaped may be ours to run
        claimed = 0
        while claimed < m.due_now and not self._stopping.is_set() and self._free_slots() and self._claim_one():
            claimed += 1
        # Due jobs left unclaimed: waiting for a slot (a finishing job wakes us), or not
        # claimable yet (their instance is busy, or another worker took them): poll for those.
        self._behind = claimed < m.due_now
        soonest = at(m.next_due)
        if self._behind and self._free_slots():
            soonest = mono + poll
        cap = mono + min(IDLE_SECONDS, self.lease_seconds)
        return min(soonest, at(m.next_expiry), next_schedule, cap) - time.monotonic()

    def _free_slots(self) -> int:
        with self._lock:
            return self.concurrency - len(self._running)

    def _claim_one(self) -> bool:
        with self.db.write() as s:
            job = queue.claim(s, worker=self.name, kinds=list(self.handlers), lease_seconds=self.lease_seconds,
                              first_steps=self.first_steps)
        if job is None:
            return False
        ctx = JobContext(job, self.db, self.settings, lambda: self.stopping, self._drivers)
        thread = threading.Thread(target=self._run, args=(ctx,), name=f"job-{job.id}", daemon=True)
        with self._lock:
            self._running[job.id] = (ctx, thread)
        log.info("job %d (%s) attempt %d/%d claimed by %s", job.id, job.kind, job.attempt, job.max_attempts,
                 self.name)
        thread.start()
        return True

    def _reap(self) -> None:
        with self.db.read() as s:
            if not queue.any_expired(s):
                return
        with self.db.write() as s:
            reaped = queue.reap_expired(s)
        for r in reaped:
            LEASE_EXPIRIES.labels(r.kind).inc()
            log.warning("job %d (%s): lease of %s expired; %s", r.job_id, r.kind, r.worker,
                        "queued again" if r.requeued else "that was its last attempt, failed")

    def _schedule(self) -> None:
        with self.db.write() as s:
            added = queue.ensure_periodic(s, list(self.periodic.values()))
        if added:
            log.info("scheduled %d periodic job(s)", len(added))

    # -- running one job --------------------------------------------------------------------

    def _run(self, ctx: JobContext) -> None:
        job = ctx.job
        started = time.monotonic()
        outcome = "lost"
        try:
            error: BaseException | None = None
            try:
                self.handlers[job.kind](ctx)
            except LeaseLost:
                error = None
                ctx.mark_lost()
            except Exception as exc:  # noqa: BLE001 - every failure becomes a recorded attempt
                error = exc
            ctx.finishing = True
            if not ctx.lease_lost:
                outcome = self._record(ctx, error)
        except Exception:  # the lease will expire and the job run again
            log.exception("job %d (%s): could not record its outcome", job.id, job.kind)
            outcome = "unrecorded"
        finally:
            JOB_DURATION.labels(job.kind, outcome).observe(time.monotonic() - started)
            with self._lock:
                self._running.pop(job.id, None)
            if self._behind:
                self._wake.set()

    def _record(self, ctx: JobContext, error: BaseException | None) -> str:
        """Write the attempt's outcome; 'succeeded', 'retrying', 'failed' or 'lost'."""
        job = ctx.job
        periodic = self.periodic.get(job.kind)
        with self.db.write() as s:
            if error is None:
                outcome = "succeeded" if queue.complete(s, job) else "lost"
                if outcome == "succeeded":
                    for write in ctx.success_writes:
                        write(s)
            else:
                detail, public, retryable, delay = explain(error)
                if delay is None:
                    delay = self.backoff.delay(job.attempt)
                outcome = queue.fail(s, job, detail, retryable=retryable, delay_s=delay,
                                     public_message=public) or "lost"
            if periodic and outcome in ("succeeded", "failed"):
                queue.enqueue_next_run(s, job, periodic)
        if outcome == "lost":
            ctx.mark_lost()
            log.warning("job %d (%s): lease lost before the outcome was written; discarded", job.id, job.kind)
        elif error is None:
            log.info("job %d (%s) succeeded", job.id, job.kind)
        else:
            detail, public, _, _ = explain(error)
            log.log(logging.ERROR if outcome == "failed" else logging.WARNING, "job %d (%s) attempt %d %s: %s",
                    job.id, job.kind, job.attempt, outcome, detail,
                    exc_info=error if public == INTERNAL_ERROR else None)
        return outcome

    # -- heartbeat --------------------------------------------------------------------------

    def _heartbeat(self) -> None:
        interval = self.lease_seconds / 3
        while not self._heartbeat_stop.wait(interval):
            with self._lock:
                contexts = [ctx for ctx, _ in self._running.values() if not (ctx.lease_lost or ctx.finishing)]
            if not contexts:
                continue
            try:
                with self.db.write() as s:
                    lost = [ctx for ctx in contexts if not queue.heartbeat(s, ctx.job, self.lease_seconds)]
            except Exception:  # try again next beat; the lease has two more beats of slack
                log.exception("worker %s: heartbeat failed", self.name)
                continue
            for ctx in lost:
                if ctx.finishing:
                    continue
                ctx.mark_lost()
                log.warning("job %d (%s): lease lost to another worker", ctx.id, ctx.kind)


def start_workers(db: Database, settings: Settings, handlers: Mapping[str, Handler], *,
                  concurrency: int | None = None, name: str | None = None,
                  periodic: list[PeriodicJob] | None = None) -> Worker:
    """Start a worker in this process (as `gpucloud serve` does); `.stop()` it on the way out."""
    return Worker(db, settings, handlers, concurrency=concurrency, name=name, periodic=periodic).start()
