"""Job and fleet metrics in Prometheus format.

Two sources, because a fleet has many worker processes and one database: what every
process can see in the database (jobs by kind and state, the queue depth) is read at
scrape time; what only a worker knows (how long its jobs took, which leases it found
expired) is counted in the process, on prometheus_client's default registry, so whoever
scrapes that process (`gpucloud serve`'s /metrics, or `gpucloud worker --metrics-port`)
sees it. Metrics other modules define on the default registry come out here too.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gpucloud.clock import utcnow
from gpucloud.store import jobs as q
from gpucloud.store.db import Database
from gpucloud.store.fleet import gpu_counts_by_state
from gpucloud.store.tables import JOB_STATES

CONTENT_TYPE = CONTENT_TYPE_LATEST

JOB_DURATION = Histogram(
    "gpucloud_job_duration_seconds", "Time a job attempt ran in this process, by kind and outcome.",
    ["kind", "outcome"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
LEASE_EXPIRIES = Counter(
    "gpucloud_job_lease_expiries", "Job leases this process found expired and reaped (the attempt was lost).",
    ["kind"],
)


class JobTableCollector:
    """Reads the jobs table on every scrape: two grouped counts, nothing per row."""

    def __init__(self, db: Database):
        self.db = db

    def collect(self) -> Iterator[Metric]:
        with self.db.read() as s:
            counts = q.count_by_kind_and_state(s)
            due = q.due_by_kind(s, utcnow())
        jobs = GaugeMetricFamily("gpucloud_jobs", "Jobs in the database, by kind and state.", labels=["kind", "state"])
        seen: dict[str, dict[str, int]] = {}
        for kind, state, n in counts:
            seen.setdefault(kind, {})[state] = n
        for kind in sorted(seen):
            for state in JOB_STATES:  # zeros too, so a state emptying is visible
                jobs.add_metric([kind, state], seen[kind].get(state, 0))
        yield jobs
        depth = GaugeMetricFamily("gpucloud_job_queue_depth", "Queued jobs whose time has come, by kind.",
                                  labels=["kind"])
        due_by = dict(due)
        for kind in sorted(set(seen) | set(due_by)):
            depth.add_metric([kind], due_by.get(kind, 0))
        yield depth


class GpuInventoryCollector:
    """GPUs per region, model and state, read on every scrape with one grouped count."""

    def __init__(self, db: Database):
        self.db = db

    def collect(self) -> Iterator[Metric]:
        with self.db.read() as s:
            rows = gpu_counts_by_state(s)
        gpus = GaugeMetricFamily("gpucloud_gpus", "GPUs we sell, by region, model and state.",
                                 labels=["region", "model", "state"])
        for region, model, state, n in sorted(rows):
            gpus.add_metric([region, model, state], n)
        yield gpus


def render_metrics(db: Database | None = None) -> bytes:
    """The /metrics body: this process's metrics, then (with `db`) the job table's and the GPU
    inventory's figures. Serve it with the `CONTENT_TYPE` header."""
    body = generate_latest(REGISTRY)
    if db is not None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(JobTableCollector(db))
        registry.register(GpuInventoryCollector(db))
        body += generate_latest(registry)
    return body
