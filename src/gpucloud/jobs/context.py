"""What a job handler gets: its job, the database and settings, its host's hypervisor driver,
and the means to report progress and to notice that its lease was lost (the worker renews
leases on another thread and tells the context when a renewal fails)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy.orm import Session

from gpucloud.config import Settings
from gpucloud.hypervisor.base import HypervisorDriver
from gpucloud.hypervisor.drivers import driver_for
from gpucloud.jobs import queue
from gpucloud.jobs.queue import ClaimedJob, LeaseLost, PermanentJobError
from gpucloud.store.db import Database
from gpucloud.store.fleet import host_by_ref


class JobContext:
    """What a handler gets: the job, the database and settings, and the means to report
    progress and to notice that its lease was lost."""

    def __init__(self, job: ClaimedJob, db: Database, settings: Settings, stopping: Callable[[], bool],
                 drivers: dict[int, HypervisorDriver] | None = None):
        self.job = job
        self.db = db
        self.settings = settings
        self._stopping = stopping
        self._lost = threading.Event()
        self.finishing = False  # the outcome is being written; a failed renewal now means nothing
        self._on_success: list[Callable[[Session], None]] = []
        # Host id -> driver, shared by the worker's jobs: a host's name, driver, URI and profile
        # never change once registered, so it is read once per worker, not once per job.
        self._drivers: dict[int, HypervisorDriver] = {} if drivers is None else drivers

    @property
    def id(self) -> int:
        return self.job.id

    @property
    def kind(self) -> str:
        return self.job.kind

    @property
    def instance_id(self) -> int | None:
        return self.job.instance_id

    @property
    def instance(self) -> int:
        """The id of the job's instance, for jobs that are about one."""
        if self.job.instance_id is None:
            raise PermanentJobError(f"job {self.id} ({self.kind}) names no instance")
        return self.job.instance_id

    @property
    def host_id(self) -> int | None:
        return self.job.host_id

    @property
    def host(self) -> int:
        """The id of the job's host, for jobs that are about one."""
        if self.job.host_id is None:
            raise PermanentJobError(f"job {self.id} ({self.kind}) names no host")
        return self.job.host_id

    @property
    def event_id(self) -> int | None:
        return self.job.event_id

    @property
    def payload(self) -> dict:
        return self.job.payload

    @property
    def attempt(self) -> int:
        """1 for the first attempt."""
        return self.job.attempt

    @property
    def max_attempts(self) -> int:
        return self.job.max_attempts

    def mark_lost(self) -> None:
        """The worker found the lease gone: every later check raises `LeaseLost`."""
        self._lost.set()

    @property
    def lease_lost(self) -> bool:
        return self._lost.is_set()

    @property
    def stopping(self) -> bool:
        """The worker is shutting down; a long handler may give up early with a
        `RetryableJobError(..., delay_s=0)` and another worker picks the job up."""
        return self._stopping()

    def check(self) -> None:
        """Raise `LeaseLost` if another worker has taken this job over."""
        if self._lost.is_set():
            raise LeaseLost(f"job {self.id}: lease lost")

    def progress(self, percent: int, message: str | None = None, *,
                 then: Callable[[Session], None] | None = None) -> None:
        """Advance the job's progress and its event's `percent_complete` (never backwards);
        `message`, if given, becomes the event's message; `then(session)`, if given, writes
        in the same transaction (a status change with its step). Raises `LeaseLost`."""
        self.check()
        with self.db.write() as s:
            held = queue.progress(s, self.job, percent, message)
            if held and then is not None:
                then(s)
        if not held:
            self._lost.set()
            self.check()

    def on_success(self, write: Callable[[Session], None]) -> None:
        """`write(session)` runs in the transaction that records the job's success, and only
        if the lease still holds then: the last step of a handler costs no transaction."""
        self._on_success.append(write)

    @property
    def success_writes(self) -> tuple[Callable[[Session], None], ...]:
        return tuple(self._on_success)

    def sleep(self, seconds: float) -> None:
        """Wait, waking early (with `LeaseLost`) if the lease is lost meanwhile."""
        self._lost.wait(seconds)
        self.check()

    def driver(self, host_id: int | None = None) -> HypervisorDriver:
        """The hypervisor driver of the job's host (or of `host_id`), shared by the worker's jobs."""
        wanted = host_id if host_id is not None else self.host_id
        if wanted is None:
            raise PermanentJobError(f"job {self.id} ({self.kind}) names no host")
        driver = self._drivers.get(wanted)
        if driver is None:
            with self.db.read() as s:
                host = host_by_ref(s, wanted)
            if host is None:
                raise PermanentJobError(f"host {wanted} no longer exists")
            driver = self._drivers[wanted] = driver_for(host, self.settings)
        return driver
