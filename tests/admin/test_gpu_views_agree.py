"""A GPU placement never uses is never drawn or counted free: the hosts list, a host's page
and its picture count GPUs exactly as `gpucloud capacity` does, and say why the rest are not."""

from __future__ import annotations

from collections import Counter

from gpucloud.admin.topology import picture
from gpucloud.hypervisor.profile import load_profile
from gpucloud.services import accounts, hosts
from gpucloud.services.capacity import capacity
from gpucloud.services.instances import NewInstance, create_instance
from tests.conftest import make_settings


def test_every_view_counts_gpus_as_capacity_does(sqlite_db, tmp_path):
    db, settings = sqlite_db, make_settings(tmp_path, sqlite_db.url)
    for name, profile in (("plain", "rtx6000-2s4g"), ("numa", "rtx6000-numa-unknown"),
                          ("blocked", "rtx6000-blocked-group"), ("drained", "rtx6000-2s4g")):
        hosts.register_host(db, settings, name=name, region="us-east", topology=load_profile(profile),
                            driver="sim", profile=profile)
    hosts.set_host_status(db, "drained", "draining", why="PSU swap")
    hosts.set_gpu_status(db, "plain", hosts.host_detail(db, "plain")["nodes"][1]["gpus"][0]["address"], "faulty",
                         why="xid 79")
    buyer = accounts.create_account(db, "f@example.com")
    create_instance(db, settings, buyer.id, buyer.username, NewInstance(type="g1-gpu-rtx6000-1", region="us-east"),
                    bypass_flags=True)

    [row] = capacity(db, settings, "us-east")
    listed = hosts.list_hosts(db, "us-east", settings)
    assert sum(h["gpus"] for h in listed) == row["total"]
    assert sum(h["gpus_claimed"] for h in listed) == row["claimed"]
    assert sum(h["gpus_free"] for h in listed) == row["free"]
    assert sum(h["gpus_unavailable"] for h in listed) == row["unavailable"]
    reasons: Counter = Counter()
    for h in listed:
        reasons.update(h["unavailable_reasons"])
    assert dict(reasons) == row["unavailable_reasons"]
    by_name = {h["name"]: h for h in listed}
    assert by_name["numa"]["gpus_free"] == 0 and by_name["numa"]["unavailable_words"].startswith("NUMA node unknown")
    assert by_name["drained"]["unavailable_words"] == "host draining 4"

    for h in listed:
        detail = hosts.host_detail(db, h["name"], settings)
        states = Counter(g["state"] for n in detail["nodes"] for g in n["gpus"])
        states.update(g["state"] for g in detail["gpus_unknown_node"])
        assert states["free"] == h["gpus_free"] == detail["gpus_free"]
        drawn = picture(detail, {}, str)
        cards = [c for n in drawn.nodes for c in n.gpus]
        assert sum(1 for c in cards if c.fill == ".free" and c.state == "free") == h["gpus_free"]
        for card in cards:
            if card.state not in ("free", "claimed"):
                assert card.fill != ".free" and "free" not in card.line2
    numa_cards = [c for n in picture(hosts.host_detail(db, "numa", settings), {}, str).nodes for c in n.gpus]
    assert {c.line2 for c in numa_cards} == {"NUMA node unknown"}
