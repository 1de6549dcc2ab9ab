"""`gpucloud worker` as an operator runs it: starts (loading placement's views), serves its
metrics, stops on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import time

import httpx

from tests.live import GPUCLOUD, clean_env, free_port


def test_worker_command_starts_serves_metrics_and_stops_on_sigterm(tmp_path):
    port = free_port()
    log = tmp_path / "worker.log"
    proc = subprocess.Popen([*GPUCLOUD, "--data-dir", str(tmp_path), "worker", "--concurrency", "2",
                             "--name", "cli-worker", "--metrics-port", str(port)],
                            env=clean_env(), stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    try:
        deadline = time.monotonic() + 30
        while not all(line in log.read_text() for line in ("running 2 jobs at a time", "placement's views loaded")):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "gpucloud_job_duration_seconds" in metrics and "gpucloud_job_lease_expiries_total" in metrics
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "worker cli-worker stopping" in text and "worker cli-worker stopped" in text
    assert "Traceback" not in text


def test_worker_command_refuses_a_bad_concurrency(tmp_path):
    done = subprocess.run([*GPUCLOUD, "--data-dir", str(tmp_path), "worker", "--concurrency", "0"],
                          env=clean_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--concurrency" in done.stderr
