"""pack's demand mix is learnt per region from the plans created there; placing and capacity use
the same learnt config, and an operator's mix wins."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

from gpucloud.clock import utcnow
from gpucloud.domain.placement import learned_weights
from gpucloud.hypervisor.profile import load_profile
from gpucloud.services import accounts, hosts, instances
from gpucloud.services.capacity import capacity, pack_mix
from gpucloud.services.placement_config import MIX_HALF_LIFE_S, MIX_REFRESH_S, demand_mix_in_use, learn_demand
from gpucloud.store import usage
from gpucloud.store.tables import UsageInterval


def test_a_create_one_half_life_old_counts_half():
    weights = learned_weights([("a", 0.0), ("a", MIX_HALF_LIFE_S), ("b", 2 * MIX_HALF_LIFE_S)], MIX_HALF_LIFE_S)
    assert weights == {"a": 1.5, "b": 0.25}


def test_the_mix_is_learnt_per_region_from_its_creates_with_a_floor_for_multi_gpu_plans(store_db, settings):
    hosts.register_host(store_db, settings, name="h1", region="us-east", topology=load_profile("rtx6000-2s4g"),
                        driver="sim", profile="rtx6000-2s4g")
    account = accounts.create_account(store_db, "mix@example.com")
    assert ("us-east", "rtx6000") not in pack_mix(store_db, settings)  # nothing created yet: the default
    now = utcnow()
    with store_db.write() as s:
        for i in range(18):
            s.add(UsageInterval(account_id=account.id, instance_id=1000 + i, label="x", region_id="us-east",
                                type_id="g1-gpu-rtx6000-1", started_at=now - timedelta(hours=1)))
        s.add(UsageInterval(account_id=account.id, instance_id=999, label="x", region_id="us-east",
                            type_id="g1-gpu-rtx6000-2", started_at=now - timedelta(hours=1)))
    later = now + timedelta(seconds=MIX_REFRESH_S + 1)
    with store_db.read() as s:
        config = learn_demand(s, settings, now=later)
        assert learn_demand(s, settings, now=later + timedelta(seconds=1)) is config  # not read again yet
    mix = dict(demand_mix_in_use(config)[("us-east", "rtx6000")])
    assert mix["g1-gpu-rtx6000-1"] > 0.8 and mix["g1-gpu-rtx6000-4"] > 0.04  # the floor keeps 4-GPU plans
    assert ("ap-west", "rtx6000") not in demand_mix_in_use(config)  # other regions keep the default
    # placing and capacity use this config: a create and the sellable figures still hold
    inst = instances.create_instance(store_db, settings, account.id, "mix",
                                     instances.NewInstance(type="g1-gpu-rtx6000-1", region="us-east"),
                                     bypass_flags=True)
    assert inst.host_id is not None
    [row] = [r for r in capacity(store_db, settings) if r["region"] == "us-east"]
    assert row["free"] == 3 and row["sellable"]["g1-gpu-rtx6000-1"] == 3


def test_an_operators_mix_is_not_replaced_by_what_was_learnt(store_db, settings):
    operator = replace(settings, placement_demand_mix="g1-gpu-rtx6000-2=1")
    with store_db.read() as s:
        config = learn_demand(s, operator, now=utcnow() + timedelta(days=1))
    assert config.region_mix == ()
    assert dict(demand_mix_in_use(config)[("", "rtx6000")])["g1-gpu-rtx6000-2"] > 0.8


def test_callers_learning_the_mix_at_once_get_one_config(store_db, settings, monkeypatch):
    """Placement's views are kept per config object: two first callers at the same moment (a
    process's start-up load and an early create) must not each build their own, equal config,
    or the second ranks the region again."""
    account = accounts.create_account(store_db, "once@example.com")
    now = utcnow()
    with store_db.write() as s:
        s.add(UsageInterval(account_id=account.id, instance_id=1000, label="x", region_id="us-east",
                            type_id="g1-gpu-rtx6000-2", started_at=now - timedelta(hours=1)))
    both = threading.Barrier(2, timeout=10)
    read = usage.started_since

    def together(s, since):
        both.wait()  # both callers are past the cache and reading the creates
        return read(s, since)

    monkeypatch.setattr(usage, "started_since", together)
    configs: list = []

    def learn() -> None:
        with store_db.read() as s:
            configs.append(learn_demand(s, settings, now=now))

    callers = [threading.Thread(target=learn) for _ in range(2)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(10)
    assert len(configs) == 2 and configs[0].region_mix and configs[0] is configs[1]
