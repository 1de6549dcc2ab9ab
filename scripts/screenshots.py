"""Screenshots of the admin interface for docs/screenshots/, from a real `gpucloud serve --demo`.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

It gives the demo fleet a day of life first: accounts boot and delete GPU instances through
the public API, a host is drained, a GPU goes faulty, one boot fails on an injected
hypervisor fault, a flag is rolled out to 25 % with a trial override. After each step it
records the capacity, stamped at a time spread over the last 24 hours (the sampler itself
records one sample every 5 minutes, so a fresh demo would show a chart of a few points).
Then Debian's Chromium (never a downloaded browser) takes the pictures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx

from gpucloud.catalog import load_catalog
from gpucloud.clock import utcnow
from gpucloud.config import load_settings
from gpucloud.hypervisor import sim
from gpucloud.services import accounts, flags, hosts
from gpucloud.services.capacity import capacity
from gpucloud.services.capacity_samples import slot_of
from gpucloud.store import capacity_samples
from gpucloud.store.db import Database

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PLANS = {  # plan -> regions it is sold in by the demo fleet
    "g1-gpu-rtx6000-1": ("us-east", "ap-west", "ap-south"), "g1-gpu-rtx6000-2": ("us-east", "ap-west", "ap-south"),
    "g2-gpu-rtx4000a1-s": ("us-east", "ap-west", "eu-central"), "g2-gpu-rtx4000a2-m": ("us-east", "eu-central"),
    "g3-gpu-h100-1": ("us-east", "ap-south"), "g3-gpu-h100-2": ("us-east", "ap-south"),
}
CUSTOMERS = ("research@lab.example", "render@studio.example", "ml@startup.example")
STEPS = 48  # one every 30 minutes over the last day


class Demo:
    def __init__(self, data_dir: Path, boot_seconds: float):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPUCLOUD_")}
        env["GPUCLOUD_SIM_BOOT_SECONDS"] = str(boot_seconds)
        self.log = (data_dir / "serve.log").open("w")
        self.process = subprocess.Popen([sys.executable, "-m", "gpucloud", "--data-dir", str(data_dir), "serve",
                                         "--demo", "--port", str(self.port)], stdout=self.log,
                                        stderr=subprocess.STDOUT, env=env)
        for _ in range(300):
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise SystemExit(f"gpucloud serve did not start; see {data_dir / 'serve.log'}")
        self.info = json.loads((data_dir / "demo.json").read_text())
        self.settings = load_settings({"data_dir": str(data_dir)}, environ={})
        self.db = Database(self.settings.resolved_database_url)

    def api(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/v4", headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)


def live_a_day(demo: Demo) -> None:
    """Boots and deletes following a daily curve, with incidents, sampling after each step."""
    rng = random.Random(8)
    tokens = [demo.info["staff_token"], demo.info["customer_token"]]
    for email in CUSTOMERS:
        info = accounts.create_account(demo.db, email, company=email.split("@")[1].split(".")[0].title())
        tokens.append(accounts.create_token(demo.db, info.id, label="demo").secret)
        flags.allow(demo.db, "gpu-instances", info.id, why="early access customer", actor="admin:ops")
    flags.allow(demo.db, "gpu-instances", "customer@example.com", why="early access customer", actor="admin:ops")
    clients = [demo.api(t) for t in tokens]
    total = sum(r["total"] for r in capacity(demo.db, demo.settings))
    alive: list[tuple[httpx.Client, int, int]] = []  # (client, instance id, GPUs)
    with demo.db.write() as s:
        # the story owns the timeline: drop the sampler's first sample (of the empty fleet), and
        # take its slots for the next day, so it records nothing while the day is replayed
        capacity_samples.prune_before(s, utcnow() + timedelta(minutes=1))
        capacity_samples.claim_slot(s, slot_of(utcnow() + timedelta(days=1)))
    for step in range(STEPS):
        hour = step / 2
        target = total * (0.30 + 0.28 * math.sin(math.pi * max(hour - 4, 0) / 22))
        held = sum(g for _, _, g in alive)
        tries = 0
        while held < target and tries < 12:
            tries += 1
            plan = rng.choice(list(PLANS))
            client = rng.choice(clients)
            reply = client.post("/linode/instances", json={"type": plan, "region": rng.choice(PLANS[plan])})
            if reply.status_code == 200:
                gpus = load_catalog().plan(plan).gpus
                alive.append((client, reply.json()["id"], gpus))
                held += gpus
        while held > target + 3 and alive:
            client, instance_id, gpus = alive.pop(rng.randrange(len(alive)))
            client.delete(f"/linode/instances/{instance_id}")
            held -= gpus
        if step == 30:
            hosts.set_host_status(demo.db, "us-east-rtx6000-2s4g-03", "draining", why="PSU fan noise, RMA #4471",
                                  actor="admin:ops")
        if step == 38:
            hosts.set_gpu_status(demo.db, "ap-west-rtx6000-2s4g-02", "0000:86:00.0", "faulty",
                                 why="Xid 79: fell off the bus", actor="admin:ops")
        time.sleep(2.0)  # let the workers move what was created and deleted along
        with demo.db.write() as s:
            at = utcnow() - timedelta(minutes=30 * (STEPS - 1 - step))
            capacity_samples.add_samples(s, at, capacity(demo.db, demo.settings))


def incidents(demo: Demo) -> None:
    """A boot that fails on a hypervisor fault, and a staged flag rollout with a trial."""
    for host in ("ap-south-rtx6000-2s4g-01", "ap-south-rtx6000-2s4g-02"):
        sim.inject_fault(demo.data_dir, host, "define", "permanent", times=1)
    demo.api(demo.info["staff_token"]).post("/linode/instances", json={"type": "g1-gpu-rtx6000-1",
                                                                        "region": "ap-south", "label": "canary"})
    time.sleep(3)
    for host in ("ap-south-rtx6000-2s4g-01", "ap-south-rtx6000-2s4g-02"):
        sim.clear_faults(demo.data_dir, host)
    flags.set_state(demo.db, "gpu-region-ap-west", "percent", 25, why="Mumbai GPUs: second rollout stage",
                    actor="admin:ops")
    flags.allow(demo.db, "gpu-region-ap-west", "render@studio.example", until=utcnow() + timedelta(days=7),
                why="one-week trial", actor="admin:ops")


def shoot(demo: Demo, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900}, device_scale_factor=1)

        def shot(name: str, path: str | None = None, full: bool = True) -> None:
            if path:
                page.goto(demo.url + path)
            page.wait_for_load_state("networkidle")
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(out / f"{name}.png"), full_page=full)
            print(f"  {out / name}.png")

        page.goto(demo.url + "/admin/login")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", "wrong password")
        page.click("button[type=submit]")
        shot("login", full=False)
        page.fill("input[name=password]", demo.info["admin_password"])
        page.click("button[type=submit]")

        shot("dashboard", "/admin/")
        shot("sellable", "/admin/sellable")
        shot("instances", "/admin/instances?model=h100")
        shot("hosts", "/admin/hosts?region=us-east")
        shot("host-topology", "/admin/hosts/us-east-h100-nps4-8g-01")
        busiest = max(httpx.get(demo.url + "/v4/linode/instances", headers={
            "Authorization": f"Bearer {demo.info['staff_token']}"}).json()["data"],
            key=lambda i: (i["specs"]["gpus"], i["status"] == "running"))
        page.goto(demo.url + f"/admin/instances/{busiest['id']}")
        page.click("[data-domain-xml] summary")
        shot("instance")
        shot("flags", "/admin/flags")

        page.goto(demo.url + "/admin/accounts?q=customer@example.com")
        page.click("a:has-text('customer@example.com')")
        page.select_option("[data-boot-form] select[name=region]", "ap-south")
        page.select_option("[data-boot-form] select[name=plan]", "g3-gpu-h100-1")
        page.click("[data-boot-button]")
        page.wait_for_selector("[data-booted]")
        time.sleep(2.5)  # mid-way: the progress bar moving
        shot("account-boot")

        staff = demo.api(demo.info["staff_token"])
        for plan, region in (("g1-gpu-rtx6000-1", "us-east"), ("g2-gpu-rtx4000a1-s", "eu-central"),
                             ("g3-gpu-h100-1", "us-east")):
            staff.post("/linode/instances", json={"type": plan, "region": region})
        time.sleep(1.5)  # the jobs running, with their leases and progress
        shot("jobs", "/admin/jobs")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "docs" / "screenshots"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gpucloud-shots-") as tmp:
        demo = Demo(Path(tmp), boot_seconds=5.0)
        try:
            print("living a day on the demo fleet…")
            live_a_day(demo)
            incidents(demo)
            print("taking screenshots:")
            shoot(demo, Path(args.out))
        finally:
            demo.stop()


if __name__ == "__main__":
    main()
