"""Console benchmark: how long the Linodes page (`/linodes`) takes to show 500 instances in
Debian's Chromium, against `gpucloud serve` on SQLite in another process.

    .venv/bin/python bench/console.py            # prints the markdown rows for docs/benchmarks.md
    .venv/bin/python bench/console.py --runs 9

Setup (not measured): a fresh data directory, ten simulated CPU hosts, and two accounts signed
up through `POST /signup` (the console's own tokens), one holding 25 Nanodes (the baseline:
one default page of the API) and one holding 500, created through `POST /v4/linode/instances`
and left to settle. Then for each, `--runs` times in a fresh tab holding its console token:

- page: from navigation start to the table holding every row (`performance.now()` in the page),
  which includes loading the shell and modules, /v4/regions, /v4/linode/types, /v4/images and
  /v4/linode/instances?page_size=500;
- api: the instances request alone (Resource Timing of that request);
- render: building the table of those instances again in the page (the console's own
  `instanceTable`), median of 20 builds.

Medians are reported, with the 500/25 ratio of each. A benchmark, not a test: nothing asserts
a time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from gpucloud.config import load_settings
from gpucloud.hypervisor.profile import load_profile
from gpucloud.services import hosts
from gpucloud.store.db import Database

GPUCLOUD = str(Path(sys.executable).with_name("gpucloud"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
PROFILE, REGION, PLAN = "cpu-2s", "us-east", "g6-nanode-1"
PASSWORD = "purple elephant marches quietly"

MEASURE = """async (count) => {
  await new Promise(resolve => {
    const done = () => document.querySelectorAll('tr[data-linode]').length >= count;
    if (done()) return resolve();
    new MutationObserver((_, observer) => { if (done()) { observer.disconnect(); resolve(); } })
      .observe(document, { childList: true, subtree: true });
  });
  const page = performance.now();
  const entry = performance.getEntriesByType('resource').find(e => e.name.includes('/v4/linode/instances'));
  const { instanceTable } = await import('/assets/js/pages/linodes.js');
  const { catalog } = await import('/assets/js/catalog.js');
  const { all } = await import('/assets/js/api.js');
  const [cat, linodes] = await Promise.all([catalog(), all('/linode/instances')]);
  if (linodes.length !== count) throw new Error(`expected ${count} instances, found ${linodes.length}`);
  const builds = [];
  for (let i = 0; i < 20; i += 1) {
    const t = performance.now();
    const table = instanceTable(linodes, cat);
    document.body.append(table);
    table.getBoundingClientRect();  // layout included
    table.remove();
    builds.push(performance.now() - t);
  }
  builds.sort((a, b) => a - b);
  return { page, api: entry ? entry.duration : null, render: builds[10] };
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(data_dir: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "GPUCLOUD_DATA_DIR": str(data_dir), "GPUCLOUD_RATE_LIMIT_PER_MINUTE": "0",
           "GPUCLOUD_SIM_BOOT_SECONDS": "0.05", "GPUCLOUD_WORKER_CONCURRENCY": "8"}
    log = open(data_dir / "server.log", "w")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen([GPUCLOUD, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"server did not start; see {data_dir / 'server.log'}")


def register_hosts(data_dir: Path) -> None:
    settings = load_settings({"data_dir": str(data_dir)}, environ={})
    db = Database(settings.resolved_database_url)
    topology = load_profile(PROFILE)
    for n in range(10):
        hosts.register_host(db, settings, name=f"bench-{n:02d}", region=REGION, topology=topology, driver="sim",
                            profile=PROFILE, actor="bench")
    db.dispose()


def seed(url: str, count: int) -> dict:
    """A new account (signed up like a customer) holding `count` Nanodes; its console session."""
    session = httpx.post(f"{url}/signup", json={"email": f"bench{count}@example.com", "password": PASSWORD}).json()
    with httpx.Client(base_url=f"{url}/v4", headers={"Authorization": f"Bearer {session['token']}"},
                      timeout=60) as http:
        for n in range(count):
            made = http.post("/linode/instances", json={"type": PLAN, "region": REGION, "label": f"bench-{n:04d}"})
            made.raise_for_status()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            statuses = {i["status"] for i in http.get("/linode/instances?page_size=500").json()["data"]}
            if statuses <= {"running", "offline"}:
                break
            time.sleep(1)
    return session


def measure(url: str, session: dict, count: int, runs: int, browser) -> dict[str, float]:
    results = []
    for _ in range(runs):
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.add_init_script(f"localStorage.setItem('gpucloud.console', {json.dumps(json.dumps(session))})")
        page = context.new_page()
        page.goto(f"{url}/linodes", wait_until="commit")
        results.append(page.evaluate(MEASURE, count))
        context.close()
    return {k: statistics.median(r[k] for r in results) for k in ("page", "api", "render")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="gpucloud-bench-console-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = serve(data_dir, port)
    try:
        register_hosts(data_dir)
        sessions = {count: seed(url, count) for count in (25, 500)}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            small = measure(url, sessions[25], 25, args.runs, browser)
            large = measure(url, sessions[500], 500, args.runs, browser)
            browser.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"| instances | page shows them (ms) | /v4/linode/instances (ms) | table build (ms) |  (median of {args.runs})")
    print("|---|---:|---:|---:|")
    for label, r in (("25 (baseline)", small), ("500", large)):
        print(f"| {label} | {r['page']:.0f} | {r['api']:.0f} | {r['render']:.1f} |")
    print(f"| ratio 500/25 | {large['page'] / small['page']:.2f} | {large['api'] / small['api']:.2f} | "
          f"{large['render'] / small['render']:.2f} |")


if __name__ == "__main__":
    main()
