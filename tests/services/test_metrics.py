"""/metrics counts GPUs per region, model and state from the database, on both databases."""

from __future__ import annotations

import re

from gpucloud.hypervisor.profile import load_profile
from gpucloud.jobs.metrics import render_metrics
from gpucloud.services import accounts, hosts, instances
from tests.conftest import make_settings


def gpus(text: str) -> dict[tuple[str, str, str], float]:
    pattern = re.compile(r'^gpucloud_gpus\{model="([^"]+)",region="([^"]+)",state="([^"]+)"\} (\S+)$', re.M)
    return {(region, model, state): float(n) for model, region, state, n in pattern.findall(text)}


def test_gpus_by_region_model_and_state(store_db, tmp_path):
    settings = make_settings(tmp_path, store_db.url)
    for name, region in (("e1", "us-east"), ("s1", "ap-south")):
        hosts.register_host(store_db, settings, name=name, region=region, topology=load_profile("rtx6000-2s4g"),
                            driver="sim", profile="rtx6000-2s4g")
    account = accounts.create_account(store_db, "metrics@example.com")
    new = instances.NewInstance(type="g1-gpu-rtx6000-2", region="us-east")
    instances.create_instance(store_db, settings, account.id, "metrics", new, bypass_flags=True)
    hosts.set_gpu_status(store_db, "e1", "0000:af:00.0", "faulty", why="Xid 79")
    hosts.set_host_status(store_db, "s1", "draining", why="move")

    assert gpus(render_metrics(store_db).decode()) == {
        ("us-east", "rtx6000", "claimed"): 2,
        ("us-east", "rtx6000", "faulty"): 1,
        ("us-east", "rtx6000", "free"): 1,
        ("ap-south", "rtx6000", "host_draining"): 4,
    }
