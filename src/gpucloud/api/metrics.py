"""API request latency for Prometheus, by method, route template and status, and /metrics.

Labels use the route template (`/v4/linode/instances/{instance_id}`), never the raw path, so
the number of series stays bounded whatever clients request. /metrics is the jobs module's
rendering: this process's default registry (this histogram included) plus the job table.
"""

from __future__ import annotations

from fastapi import FastAPI, Response
from prometheus_client import Histogram

from gpucloud.jobs.metrics import CONTENT_TYPE, render_metrics

REQUEST_SECONDS = Histogram(
    "gpucloud_api_request_seconds",
    "Public API request latency, from the first byte of the request to the last of the response.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    REQUEST_SECONDS.labels(method, route, str(status)).observe(seconds)


def mount(app: FastAPI) -> None:
    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(render_metrics(app.state.db), media_type=CONTENT_TYPE)
