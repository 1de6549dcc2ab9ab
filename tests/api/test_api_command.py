"""`gpucloud api --workers 2` on PostgreSQL: serves the API and /metrics, and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

GPUCLOUD = str(Path(sys.executable).with_name("gpucloud"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_api_command_serves_from_worker_processes(pg_api_server, tmp_path):
    alice = pg_api_server.customer()
    port = _free_port()
    env = {**os.environ, "GPUCLOUD_DATABASE_URL": pg_api_server.db.url.replace("+psycopg", ""),
           "GPUCLOUD_DATA_DIR": str(tmp_path)}
    process = subprocess.Popen([GPUCLOUD, "api", "--port", str(port), "--workers", "2"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180  # three processes importing the app on a loaded 2-core CI machine
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail(f"gpucloud api did not start:\n{process.communicate()[0][-2000:]}")
            time.sleep(0.2)
        with httpx.Client(base_url=f"{base}/v4", headers={"Authorization": f"Bearer {alice.token}"}) as http:
            answers = [http.get("/linode/types") for _ in range(20)]
            assert {a.status_code for a in answers} == {200}
            assert any(t["class"] == "gpu" for t in answers[0].json()["data"])  # the same flags, the same database
            assert http.get("/profile").json()["username"] == alice.username
            metrics = http.get(f"{base}/metrics").text  # same connection, same process: metrics are per process
        assert 'gpucloud_api_request_seconds_count{method="GET",route="/v4/linode/types",status="200"}' in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
