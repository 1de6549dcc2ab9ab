"""Waking idle workers when a job is queued, instead of polling for it.

On PostgreSQL a trigger notifies channel `gpucloud_jobs` whenever a job enters `queued`
(inserted, or queued again): this listener holds one connection of its own in LISTEN and
sets the worker's wake-up event for every notification. It sleeps in `select` on the
connection's socket and a pipe of its own (`stop` writes to it), so it costs nothing while
nothing happens. While it listens, an idle dispatcher sleeps until a notification, the next
moment it knows of (a queued job due, a lease running out, the periodic scheduler's turn
every `SCHEDULE_SECONDS`), at most `IDLE_SECONDS`; if the connection drops, the listener
reconnects with a backoff and the worker polls every `worker_poll_seconds` meanwhile. SQLite
has no notifications: workers poll.
"""

from __future__ import annotations

import logging
import os
import selectors
import threading

from sqlalchemy.exc import SQLAlchemyError

from gpucloud.store.db import Database

log = logging.getLogger(__name__)

CHANNEL = "gpucloud_jobs"
IDLE_SECONDS = 30.0  # the longest an idle, listening dispatcher sleeps (and at most a lease)
SCHEDULE_SECONDS = 60.0  # how often a listening worker fills periodic jobs' gaps (at most a period)


class Wakeup:
    """LISTEN on `gpucloud_jobs` and set `event` on each notification (PostgreSQL only)."""

    def __init__(self, db: Database, event: threading.Event):
        self.event = event
        self._db = db if db.dialect == "postgresql" else None
        self._listening = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pipe: tuple[int, int] | None = None  # stop() writes to it, ending the listener's select

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    def start(self) -> Wakeup:
        if self._db is not None:
            self._pipe = os.pipe()
            self._thread = threading.Thread(target=self._run, name="jobs-wakeup", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None and self._pipe is not None:
            os.write(self._pipe[1], b"x")
            self._thread.join(timeout)
            if not self._thread.is_alive():
                for fd in self._pipe:
                    os.close(fd)
                self._pipe = None

    def _run(self) -> None:
        if self._db is None or self._pipe is None:
            return
        stop_r = self._pipe[0]
        engine = self._db.write_engine
        errors = (engine.dialect.loaded_dbapi.Error, SQLAlchemyError, OSError)  # psycopg's, not imported here
        delay = 0.5
        while not self._stop.is_set():
            try:
                pooled = engine.raw_connection()
                conn = pooled.driver_connection
                pooled.detach()  # ours for as long as we listen, not the pool's
                if conn is None:
                    raise OSError("no connection")
                with conn:
                    conn.autocommit = True
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    self.event.set()  # whatever was queued while nobody listened
                    delay = 0.5
                    with selectors.DefaultSelector() as sel:
                        sel.register(conn.fileno(), selectors.EVENT_READ)
                        sel.register(stop_r, selectors.EVENT_READ)
                        while not self._stop.is_set():
                            sel.select()  # a notification, the connection closing, or stop
                            if self._stop.is_set():
                                break
                            for _ in conn.notifies(timeout=0):  # reads what arrived; raises if the server is gone
                                self.event.set()
            except errors as exc:
                if self._listening.is_set():
                    log.warning("job wake-ups: lost the listening connection (%s); polling meanwhile", exc)
                self._listening.clear()
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)
        self._listening.clear()
