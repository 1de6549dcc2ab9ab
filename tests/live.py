"""Start the real `gpucloud` server in a subprocess on a free loopback port, for tests that
want the whole product (CLI, HTTP, workers) exactly as an operator runs it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import FAST_SIM

GPUCLOUD = [sys.executable, "-m", "gpucloud"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(extra: dict | None = None) -> dict:
    """The test's environment without GPUCLOUD_* settings leaking in from the developer's shell
    (the simulated fleet's steps as quick as `tests.conftest.make_settings` makes them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUCLOUD_")}
    fast = {"GPUCLOUD_" + k.upper(): str(v) for k, v in FAST_SIM.items()}
    return {**env, **fast, **(extra or {})}


def run_cli(data_dir: Path, *args: str, env: dict | None = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `gpucloud --data-dir DATA_DIR ARGS...` and return the finished process."""
    proc = subprocess.run([*GPUCLOUD, "--data-dir", str(data_dir), *args], capture_output=True, text=True,
                          env=clean_env(env), timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"gpucloud {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@dataclass
class LiveServer:
    url: str
    port: int
    data_dir: Path
    process: subprocess.Popen
    log: Path

    @property
    def api(self) -> str:
        return self.url + "/v4"

    def demo(self) -> dict:
        return json.loads((self.data_dir / "demo.json").read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_server(data_dir: Path, *args: str, command: str = "serve", env: dict | None = None,
                 timeout: float = 90) -> LiveServer:
    """`gpucloud serve ARGS` (or another command) on a free port; waits for /healthz."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / f"{command}-{port}.log"
    process = subprocess.Popen([*GPUCLOUD, "--data-dir", str(data_dir), command, "--port", str(port), *args],
                               stdout=log.open("w"), stderr=subprocess.STDOUT, env=clean_env(env))
    server = LiveServer(f"http://127.0.0.1:{port}", port, data_dir, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"gpucloud {command} exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(server.url + "/healthz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise AssertionError(f"gpucloud {command} did not answer /healthz in {timeout}s:\n{log.read_text()}")
