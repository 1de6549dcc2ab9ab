"""Placement's view of hosts is cached per process by host generation; whatever changes a
host's free state must move its generation, so the cached view always equals a fresh read."""

from __future__ import annotations

import gc
import importlib
import itertools
import threading
import time
from dataclasses import replace

from sqlalchemy import select, update

from gpucloud.catalog import load_catalog
from gpucloud.domain.fleet_index import Fleet
from gpucloud.domain.placement import PlacementRequest, demand_mix, place
from gpucloud.hypervisor.profile import builtin_profiles, load_profile
from gpucloud.services import accounts, host_health, hosts, instances, preload
from gpucloud.services.account_admin import set_staff
from gpucloud.services.placement_config import learn_demand, placement_config
from gpucloud.services.provisioning import remove_instance
from gpucloud.store import host_states, migrate, usage
from gpucloud.store.catalog import sync_catalog
from gpucloud.store.db import Database
from gpucloud.store.host_states import all_states, build_states
from gpucloud.store.tables import CpuRow, Host
from tests.conftest import make_settings


def count_reads_and_rankings(monkeypatch) -> tuple[list[int], list[str]]:
    """From now on, the ids of the hosts read into a view and the regions ranked for the plans."""
    read: list[int] = []
    ranked: list[str] = []
    build, warm = host_states.build_states, Fleet.warm

    def counted_build(session, host_ids, *args, **kwargs):
        read.extend(host_ids)
        return build(session, host_ids, *args, **kwargs)

    def counted_warm(fleet, region):
        ranked.append(region)
        return warm(fleet, region)

    monkeypatch.setattr(host_states, "build_states", counted_build)
    monkeypatch.setattr(Fleet, "warm", counted_warm)
    return read, ranked


def _same_as_fresh(db, settings) -> list:
    with db.read() as s:
        cached = all_states(s, placement_config(settings), "us-east")
        fresh = build_states(s, [h.id for h in cached])
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
    host_health.record_checks(store_db, answered=[before[0].id], missed={}, down_after=3)
    assert _same_as_fresh(store_db, settings)[0].status == "active"

    hosts.register_host(store_db, settings, name="h2", region="us-east", topology=load_profile("rtx6000-2s4g"),
                        driver="sim", profile="rtx6000-2s4g")
    assert [h.id for h in _same_as_fresh(store_db, settings)] == [before[0].id, before[0].id + 1]


def test_a_claim_applied_by_this_process_equals_a_fresh_read(store_db, tmp_path):
    """After its own create a process applies the placement to its view instead of reading
    the host again: the result must be exactly what a fresh read gives."""
    settings = make_settings(tmp_path, store_db.url)
    hosts.register_host(store_db, settings, name="h1", region="us-east", topology=load_profile("h100-nps4-8g"),
                        driver="sim", profile="h100-nps4-8g")
    account = accounts.create_account(store_db, "own@example.com")
    for plan in ("g3-gpu-h100-1", "g3-gpu-h100-2", "g3-gpu-h100-4"):
        new = instances.NewInstance(type=plan, region="us-east")
        instances.create_instance(store_db, settings, account.id, "own", new, bypass_flags=True)
        with store_db.read() as s:
            viewed = {h.id: h for h in all_states(s, placement_config(settings), "us-east")}
        with store_db.read() as s:
            assert list(viewed.values()) == build_states(s, list(viewed))


def test_the_view_warmed_for_every_plan_decides_like_a_scan_of_a_fresh_read(store_db, tmp_path):
    """The view ranks every plan of the catalog when it loads the region (no decision for a plan
    builds a ranking); its decisions are those of `place()` over the hosts read afresh."""
    settings = make_settings(tmp_path, store_db.url)
    for name, profile in (("h1", "rtx6000-2s4g"), ("h2", "h100-nps4-8g"), ("h3", "cpu-2s")):
        hosts.register_host(store_db, settings, name=name, region="us-east", topology=load_profile(profile),
                            driver="sim", profile=profile)
    account = accounts.create_account(store_db, "warm@example.com")
    instances.create_instance(store_db, settings, account.id, "warm",
                              instances.NewInstance(type="g3-gpu-h100-1", region="us-east"), bypass_flags=True)
    config = placement_config(settings)
    assert config.plans == tuple(load_catalog().plans)
    with store_db.read() as s:
        fresh = build_states(s, [h.id for h in all_states(s, config, "us-east")])
        for plan in load_catalog().plans:
            request = PlacementRequest.for_plan(plan, "us-east")
            assert host_states.place(s, request, config) == place(request, fresh, config), plan.id


def test_a_newer_learnt_mix_takes_the_hosts_over_without_reading_them_again(store_db, tmp_path, monkeypatch):
    """When the learnt mix is replaced, the view for the new config starts from the old view's
    hosts (reading 10,000 hosts again costs ~20 s of CPU on PostgreSQL) and reads only what
    changed since; it equals a fresh read and decides as `place()` does with the new mix."""
    settings = make_settings(tmp_path, store_db.url)
    ids = [hosts.register_host(store_db, settings, name=name, region="us-east", profile="rtx6000-2s4g",
                               topology=load_profile("rtx6000-2s4g"), driver="sim").id for name in ("h1", "h2", "h3")]
    account = accounts.create_account(store_db, "mix@example.com")
    old = placement_config(settings)
    with store_db.read() as s:
        all_states(s, old, "us-east")
    taken = instances.create_instance(store_db, settings, account.id, "mix",
                                      instances.NewInstance(type="g1-gpu-rtx6000-1", region="us-east"),
                                      bypass_flags=True).host_id  # applied to the old view, or read by the new
    hosts.set_host_status(store_db, "h3", "draining", why="PSU swap")  # seen by no view yet
    catalog = load_catalog()
    learnt = replace(old, region_mix=(("us-east", demand_mix(catalog.plans, {"g1-gpu-rtx6000-2": 1.0})),))
    read: list[int] = []
    original = host_states.build_states

    def counted(session, host_ids, *args, **kwargs):
        read.extend(host_ids)
        return original(session, host_ids, *args, **kwargs)

    monkeypatch.setattr(host_states, "build_states", counted)
    with store_db.read() as s:
        states = all_states(s, learnt, "us-east")
        assert ids[2] in read and set(read) <= {taken, ids[2]}  # what changed since, nothing else
        fresh = original(s, [h.id for h in states])
        assert states == fresh
        for plan in catalog.gpu_plans("rtx6000"):
            request = PlacementRequest.for_plan(plan, "us-east")
            assert host_states.place(s, request, learnt) == place(request, fresh, learnt), plan.id


def test_a_region_read_at_once_gives_every_host_its_own_topology(store_db, tmp_path):
    """Hosts of one hardware profile share what their rows repeat (threads, distances, PCI
    functions) when read together, and hosts whose state would be built from equal inputs (the
    idle hosts of a profile) share one state's nodes and GPUs; each must still read back as
    registered, and its state as when read alone: claimed, draining, with a faulty GPU or a
    host override alike."""
    settings = make_settings(tmp_path, store_db.url)
    shipped = sorted(builtin_profiles())
    base = load_profile("rtx6000-2s4g")  # the same threads with more memory and hugepages on each node
    more = replace(base, nodes=tuple(replace(n, memory_mib=2 * n.memory_mib, hugepages_1g=n.hugepages_1g + 4)
                                     for n in base.nodes))
    expected = [load_profile(p) for p in shipped * 3] + [more]
    for n, topology in enumerate(expected):
        hosts.register_host(store_db, settings, name=f"h{n}", region="us-east", topology=topology, driver="sim")
    account = accounts.create_account(store_db, "together@example.com")
    for plan in ("g1-gpu-rtx6000-1", "g1-gpu-rtx6000-1", "g3-gpu-h100-2", "g2-gpu-rtx4000a1-s", "g6-standard-2",
                 "g6-dedicated-2"):
        instances.create_instance(store_db, settings, account.id, "together",
                                  instances.NewInstance(type=plan, region="us-east"), bypass_flags=True)
    rtx6000 = len(shipped) + shipped.index("rtx6000-2s4g")
    hosts.set_host_status(store_db, f"h{rtx6000}", "draining", why="PSU swap")
    hosts.set_gpu_status(store_db, f"h{rtx6000 + len(shipped)}", load_profile("rtx6000-2s4g").gpus[0].address,
                         "faulty", why="Xid 79")
    with store_db.write() as s:
        s.execute(update(Host).where(Host.name == f"h{len(shipped)}").values(settings={"shared_cpu_overcommit": 2.0}))
    with store_db.read() as s:
        ids = sorted(s.scalars(select(Host.id)))
        read = host_states.topologies(s, ids)
        together = build_states(s, ids)
        alone = [state for host_id in ids for state in build_states(s, [host_id])]
    assert [read[host_id].topology for host_id in ids] == expected
    assert together == alone and len(together) == len(expected)
    assert [h.shape for h in together] == [h.shape for h in alone]  # copies take the shape they were copied from
    assert {h.status for h in together} == {"active", "draining"} and any(h.overrides for h in together)
    assert any(h.claimed_gpus for h in together) and any(h.unavailable_gpus for h in together)
    shared = {id(h.nodes) for h in together}
    assert len(shared) < len(together) and len({id(h.nodes) for h in alone}) == len(alone)


def test_a_process_loads_its_views_at_start_and_its_first_create_reads_and_ranks_nothing(store_db, tmp_path,
                                                                                           monkeypatch):
    """`services.preload` loads every region's view when a process starts, with the config its
    placements will use (views are kept per config, and pack's mix is learnt from the creates):
    the process's first create then reads no host and ranks no region again. What is alive
    once they are loaded is frozen (`gc.freeze`)."""
    settings = make_settings(tmp_path, store_db.url)
    for name, region in (("h1", "us-east"), ("h2", "us-east"), ("h3", "eu-central")):
        hosts.register_host(store_db, settings, name=name, region=region, topology=load_profile("rtx6000-2s4g"),
                            driver="sim", profile="rtx6000-2s4g")
    account = accounts.create_account(store_db, "preload@example.com")
    new = instances.NewInstance(type="g1-gpu-rtx6000-2", region="us-east")
    instances.create_instance(store_db, settings, account.id, "before", new, bypass_flags=True)
    restarted = Database(store_db.url)  # a new pool: a process starting with nothing cached
    frozen = gc.get_freeze_count()
    try:
        preload.start(restarted, settings).join()
        assert gc.get_freeze_count() > frozen  # the states loaded are out of the collector's scans
        with restarted.write() as s:
            assert learn_demand(s, settings).region_mix  # a learnt mix: not the settings' own config
        read, ranked = count_reads_and_rankings(monkeypatch)
        instances.create_instance(restarted, settings, account.id, "after", new, bypass_flags=True)
        assert read == [] and ranked == []
        _same_as_fresh(restarted, settings)
    finally:
        gc.unfreeze()  # what this test process froze goes back to the collector
        restarted.dispose()
    assert preload.load_views(store_db, settings) == {"eu-central": 1, "us-east": 2}


def test_a_failed_preload_is_logged_and_the_first_placement_loads_its_region(tmp_path, caplog):
    """A process whose load at start fails (here: no schema yet) logs it and keeps serving;
    each region then loads at its first placement, as without the preload."""
    db = Database(f"sqlite:///{tmp_path / 'late.sqlite'}")
    settings = make_settings(tmp_path, db.url)
    try:
        preload.start(db, settings).join()
        assert "loading placement's views at start failed" in caplog.text
        migrate.upgrade(db)
        with db.write() as s:
            sync_catalog(s, load_catalog())
        hosts.register_host(db, settings, name="h1", region="us-east", topology=load_profile("rtx6000-2s4g"),
                            driver="sim", profile="rtx6000-2s4g")
        account = accounts.create_account(db, "late@example.com")
        inst = instances.create_instance(db, settings, account.id, "late",
                                         instances.NewInstance(type="g1-gpu-rtx6000-1", region="us-east"),
                                         bypass_flags=True)
        assert inst.host_id is not None
    finally:
        db.dispose()


def test_hosts_of_one_cpu_layout_share_one_read_of_it(store_db, tmp_path):
    """The key of a host's CPU layout is written at registration (and by migration 0012 for the
    hosts before it); a region's load reads the threads of one host per key. Hosts of a profile
    share a key unless their reserved cores differ; a host without a key (registered by an
    older process) is read on its own."""
    profile = load_profile("rtx6000-2s4g")
    for name, reserved_cores in (("h1", 1), ("h2", 1), ("h3", 2), ("h4", 1)):
        hosts.register_host(store_db, make_settings(tmp_path, store_db.url, reserved_cores_per_node=reserved_cores),
                            name=name, region="us-east", topology=profile, driver="sim", profile="rtx6000-2s4g")
    with store_db.write() as s:
        keys = dict(s.execute(select(Host.name, Host.cpu_layout_key)).all())
        s.execute(update(Host).where(Host.name == "h4").values(cpu_layout_key=None))
        # Rows the key does not describe (CPU rows never change once registered): not read.
        s.execute(update(CpuRow).where(CpuRow.host_id == select(Host.id).where(Host.name == "h2").scalar_subquery())
                  .values(socket_id=CpuRow.socket_id + 10))
    assert keys["h1"] == keys["h2"] == keys["h4"] != keys["h3"]
    restarted = Database(store_db.url)  # nothing read yet
    try:
        with restarted.read() as s:
            ids = dict(s.execute(select(Host.name, Host.id)).all())
            read = host_states.topologies(s, list(ids.values()))
    finally:
        restarted.dispose()
    assert read[ids["h1"]].topology == read[ids["h2"]].topology == profile == read[ids["h4"]].topology
    assert read[ids["h1"]].reserved_cpus != read[ids["h3"]].reserved_cpus
    assert len(read[ids["h3"]].reserved_cpus) == 2 * len(read[ids["h1"]].reserved_cpus)


def test_migration_0012_gives_every_host_the_key_registration_gives(store_db, tmp_path):
    settings = make_settings(tmp_path, store_db.url)
    for n, profile in enumerate(sorted(builtin_profiles())):
        hosts.register_host(store_db, settings, name=f"h{n}", region="us-east", topology=load_profile(profile),
                            driver="sim")
    with store_db.write() as s:
        registered = dict(s.execute(select(Host.id, Host.cpu_layout_key)).all())
        s.execute(update(Host).values(cpu_layout_key=None))
        importlib.import_module("gpucloud.store.migrations.versions.0012_host_cpu_layout_key").backfill(s.connection())
        assert dict(s.execute(select(Host.id, Host.cpu_layout_key)).all()) == registered
    assert None not in registered.values()


def test_a_new_learnt_mix_waits_for_a_placement_reading_hosts_without_blocking_it(store_db, tmp_path, monkeypatch):
    """The view for a new learnt mix takes the old view's hosts once the placement using the old
    view is done with them; that placement, reading a changed host meanwhile, must not wait on
    the new view (it did: the new view held the cache's lock while waiting for the old view)."""
    settings = make_settings(tmp_path, store_db.url)
    hosts.register_host(store_db, settings, name="h1", region="us-east", profile="rtx6000-2s4g",
                        topology=load_profile("rtx6000-2s4g"), driver="sim")
    old = placement_config(settings)
    with store_db.read() as s:
        all_states(s, old, "us-east")
    hosts.set_host_status(store_db, "h1", "draining", why="PSU swap")  # the old view reads h1 again
    new = replace(old, region_mix=(("us-east", demand_mix(load_catalog().plans, {"g1-gpu-rtx6000-2": 1.0})),))
    reading, go = threading.Event(), threading.Event()
    original = host_states.build_states

    def paused(session, host_ids, *args, **kwargs):
        reading.set()
        go.wait(10)
        return original(session, host_ids, *args, **kwargs)

    monkeypatch.setattr(host_states, "build_states", paused)
    seen: dict[str, list] = {}

    def states(name: str, config) -> None:
        with store_db.read() as s:
            seen[name] = [h.status for h in all_states(s, config, "us-east")]

    placing = threading.Thread(target=states, args=("old", old), daemon=True)
    placing.start()
    assert reading.wait(10)
    learning = threading.Thread(target=states, args=("new", new), daemon=True)
    learning.start()
    time.sleep(0.2)  # the new mix's view now waits for the old view
    go.set()
    placing.join(10)
    learning.join(10)
    assert not placing.is_alive() and not learning.is_alive()
    assert seen == {"old": ["draining"], "new": ["draining"]}


def test_an_early_create_beside_the_start_up_load_shares_its_view(postgres_db, tmp_path, monkeypatch):
    """A create that learns the demand mix at the same moment as the start-up load gets the same
    config (`learn_demand`), so both use one view: each region is loaded and ranked once, and the next create reads and ranks nothing. PostgreSQL only: SQLite's write
    transactions (where both learn) run one at a time, so they cannot learn at once there."""
    settings = make_settings(tmp_path, postgres_db.url)
    ids = [hosts.register_host(postgres_db, settings, name=name, region=region, profile="rtx6000-2s4g",
                               topology=load_profile("rtx6000-2s4g"), driver="sim").id
           for name, region in (("h1", "us-east"), ("h2", "us-east"), ("h3", "eu-central"))]
    account = accounts.create_account(postgres_db, "beside@example.com")
    new = instances.NewInstance(type="g1-gpu-rtx6000-2", region="us-east")
    instances.create_instance(postgres_db, settings, account.id, "before", new, bypass_flags=True)
    both, calls, started_since = threading.Barrier(2, timeout=10), itertools.count(), usage.started_since

    def together(s, since):
        if next(calls) < 2:
            both.wait()  # the first two learn at once: both past the cache, reading the creates
        return started_since(s, since)

    monkeypatch.setattr(usage, "started_since", together)
    read, ranked = count_reads_and_rankings(monkeypatch)
    restarted = Database(postgres_db.url)  # a process starting
    try:
        loading = preload.start(restarted, settings)
        instances.create_instance(restarted, settings, account.id, "early", new, bypass_flags=True)
        loading.join(10)
        # (a host the early create claimed may be read again by the load, if it looks before the
        # create applied its claim to the view)
        assert set(read) == set(ids) and sorted(ranked) == ["eu-central", "us-east"]
        read.clear()
        instances.create_instance(restarted, settings, account.id, "after", new, bypass_flags=True)
        assert read == [] and sorted(ranked) == ["eu-central", "us-east"]
        _same_as_fresh(restarted, settings)
    finally:
        gc.unfreeze()
        restarted.dispose()
