"""The placement settings of this process, built once from `Settings` (placement keeps a memo
of fits inside its config, so one long-lived object is much faster than one per request)."""

from __future__ import annotations

import threading

from gpucloud.catalog import load_catalog
from gpucloud.config import Settings
from gpucloud.domain.placement import PlacementConfig, demand_mix, parse_demand_mix
from gpucloud.errors import ConfigError

_configs: dict[tuple, PlacementConfig] = {}
_lock = threading.Lock()


def placement_config(settings: Settings) -> PlacementConfig:
    key = (settings.placement_policy, settings.numa_unknown_policy, settings.shared_cpu_overcommit,
           settings.reserved_cores_per_node, settings.reserved_memory_mib_per_node, settings.placement_demand_mix)
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


def demand_mix_in_use(settings: Settings) -> dict[str, list[tuple[str, float]]]:
    """pack's demand mix per GPU model, as shares of the model's weight (largest first)."""
    by_model: dict[str, list[tuple[str, float]]] = {}
    for plan, weight in placement_config(settings).demand_mix:
        by_model.setdefault(str(plan.gpu_model), []).append((plan.id, weight))
    out = {}
    for model, entries in by_model.items():
        total = sum(w for _, w in entries)
        out[model] = sorted(((plan_id, w / total) for plan_id, w in entries), key=lambda e: (-e[1], e[0]))
    return out
