"""The placement settings of this process, built once from `Settings` (placement keeps a memo
of fits inside its config, so one long-lived object is much faster than one per request).

`pack`'s demand mix is learnt per region from the plans created there (`learn_demand`: every
create and plan change, a create MIX_HALF_LIFE_S old counting half), unless an operator sets
`placement_demand_mix`. It is read again at most every MIX_REFRESH_S per database, and the config
is replaced only when a plan's share moved by more than MIX_CHANGE (a new config ranks the
region again); callers learning at once get one object, as placement's views are kept per config
object. A multi-GPU plan keeps its floor (`placement.MULTI_GPU_FLOOR`)."""

from __future__ import annotations

import threading
import weakref
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool

from gpucloud.catalog import load_catalog
from gpucloud.clock import utcnow
from gpucloud.config import Settings
from gpucloud.domain.catalog import Plan
from gpucloud.domain.placement import PlacementConfig, demand_mix, learned_weights, parse_demand_mix
from gpucloud.errors import ConfigError
from gpucloud.store import host_states, usage

MIX_HALF_LIFE_S = 3 * 86400
MIX_REFRESH_S = 600
MIX_CHANGE = 0.05

_configs: dict[tuple, PlacementConfig] = {}
_learnt: weakref.WeakKeyDictionary[Pool, dict[tuple, tuple[PlacementConfig, datetime]]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _key(settings: Settings) -> tuple:
    return (settings.placement_policy, settings.numa_unknown_policy, settings.shared_cpu_overcommit,
            settings.reserved_cores_per_node, settings.reserved_memory_mib_per_node, settings.placement_demand_mix)


def placement_config(settings: Settings) -> PlacementConfig:
    key = _key(settings)
    with _lock:
        config = _configs.get(key)
        if config is None:
            try:
                weights = parse_demand_mix(settings.placement_demand_mix, load_catalog().plans)
            except ValueError as exc:
                raise ConfigError(f"placement_demand_mix: {exc}") from None
            config = _configs[key] = PlacementConfig(
                policy=settings.placement_policy,
                numa_unknown_policy=settings.numa_unknown_policy,
                shared_cpu_overcommit=settings.shared_cpu_overcommit,
                demand_mix=demand_mix(load_catalog().plans, weights),
                plans=tuple(load_catalog().plans),
                reserved_cores_per_node=settings.reserved_cores_per_node,
                reserved_memory_mib_per_node=settings.reserved_memory_mib_per_node,
            )
        return config


def learn_demand(s: Session, settings: Settings, now: datetime | None = None) -> PlacementConfig:
    """The config for this session's database: pack's mixes per region learnt again from the
    recent creates when due (kept per database, like placement's views of the hosts)."""
    base = placement_config(settings)
    if settings.placement_demand_mix or base.policy != "pack":
        return base
    key, pool, now = _key(settings), host_states.pool_of(s), now or utcnow()
    with _lock:
        learnt = _learnt.setdefault(pool, {})
        entry = learnt.get(key)
        if entry is not None and timedelta(0) <= now - entry[1] < timedelta(seconds=MIX_REFRESH_S):
            return entry[0]
    created: dict[str, list[tuple[str, float]]] = {}
    for region, plan_id, started in usage.started_since(s, now - timedelta(seconds=8 * MIX_HALF_LIFE_S)):
        created.setdefault(region, []).append((plan_id, (now - started).total_seconds()))
    plans = load_catalog().plans
    mixes = {region: demand_mix(plans, learned_weights(items, MIX_HALF_LIFE_S)) for region, items in created.items()}
    region_mix = tuple(sorted(((region, mix) for region, mix in mixes.items() if mix), key=lambda e: e[0]))
    with _lock:  # compared with what is stored now: another caller may have stored meanwhile
        entry = learnt.get(key)
        current = entry[0] if entry is not None else base
        if not _close(_shares_by_region(region_mix), _shares_by_region(current.region_mix)):
            current = replace(base, region_mix=region_mix)  # a new config: the views rank the region again
        learnt[key] = (current, now)
    return current


def _shares(mix: tuple[tuple[Plan, float], ...]) -> dict[str, float]:
    totals: dict[str | None, float] = {}
    for plan, weight in mix:
        totals[plan.gpu_model] = totals.get(plan.gpu_model, 0.0) + weight
    return {plan.id: weight / totals[plan.gpu_model] for plan, weight in mix}


def _shares_by_region(region_mix: tuple) -> dict[tuple[str, str], float]:
    return {(region, plan_id): share for region, mix in region_mix for plan_id, share in _shares(mix).items()}


def _close(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) <= MIX_CHANGE for k in a)


def demand_mix_in_use(config: PlacementConfig) -> dict[tuple[str, str], list[tuple[str, float]]]:
    """pack's demand mix per (region, GPU model) as shares, largest first; region '' = every
    region without a learnt mix of its own for that model."""
    out: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for region, mix in (("", config.demand_mix), *config.region_mix):
        models = {plan.id: str(plan.gpu_model) for plan, _ in mix}
        for plan_id, share in _shares(mix).items():
            out.setdefault((region, models[plan_id]), []).append((plan_id, share))
    return {k: sorted(v, key=lambda e: (-e[1], e[0])) for k, v in out.items()}
