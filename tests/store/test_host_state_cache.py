"""Placement's view of hosts is cached per process by host generation; whatever changes a
host's free state must move its generation, so the cached view always equals a fresh read."""

from __future__ import annotations

from gpucloud.hypervisor.profile import load_profile
from gpucloud.services import accounts, host_health, hosts, instances
from gpucloud.services.account_admin import set_staff
from gpucloud.services.provisioning import remove_instance
from gpucloud.store.claims import _build_states, load_host_states
from tests.conftest import make_settings


def _same_as_fresh(db, settings) -> list:
    with db.read() as s:
        cached = load_host_states(s, settings, region="us-east")
        fresh = _build_states(s, [h.id for h in cached], None)
    assert cached == fresh
    return cached


def test_every_change_of_a_host_is_seen_through_the_cache(store_db, tmp_path):
    settings = make_settings(tmp_path, store_db.url)
    hosts.register_host(store_db, settings, name="h1", region="us-east", topology=load_profile("rtx6000-2s4g"),
                        driver="sim", profile="rtx6000-2s4g")
    account = accounts.create_account(store_db, "cache@example.com")
    before = _same_as_fresh(store_db, settings)

    new = instances.NewInstance(type="g1-gpu-rtx6000-1", region="us-east")
    inst = instances.create_instance(store_db, settings, account.id, "cache", new, bypass_flags=True)
    after_create = _same_as_fresh(store_db, settings)
    assert len(after_create[0].claimed_gpus) == 1 and after_create[0].generation > before[0].generation

    set_staff(store_db, account.id, True, why="joined", actor="test")
    assert [g.staff for g in _same_as_fresh(store_db, settings)[0].claimed_gpus] == [True]

    hosts.set_gpu_status(store_db, "h1", "0000:af:00.0", "faulty", why="Xid 79")
    hosts.set_host_status(store_db, "h1", "draining", why="swap")
    assert _same_as_fresh(store_db, settings)[0].status == "draining"

    remove_instance(store_db, inst.id)
    assert _same_as_fresh(store_db, settings)[0].claimed_gpus == ()

    hosts.set_host_status(store_db, "h1", "down", why="gone")
    host_health.record_seen(store_db, before[0].id)
    assert _same_as_fresh(store_db, settings)[0].status == "active"
