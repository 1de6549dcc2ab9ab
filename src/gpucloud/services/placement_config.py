"""The placement settings of this process, built once from `Settings` (placement keeps a memo
of fits inside its config, so one long-lived object is much faster than one per request)."""

from __future__ import annotations

import threading

from gpucloud.catalog import load_catalog
from gpucloud.config import Settings
from gpucloud.domain.placement import PlacementConfig, demand_mix

_configs: dict[tuple, PlacementConfig] = {}
_lock = threading.Lock()


def placement_config(settings: Settings) -> PlacementConfig:
    key = (settings.placement_policy, settings.numa_unknown_policy, settings.shared_cpu_overcommit,
           settings.reserved_cores_per_node, settings.reserved_memory_mib_per_node)
    with _lock:
        config = _configs.get(key)
        if config is None:
            config = _configs[key] = PlacementConfig(
                policy=settings.placement_policy,
                numa_unknown_policy=settings.numa_unknown_policy,
                shared_cpu_overcommit=settings.shared_cpu_overcommit,
                demand_mix=demand_mix(load_catalog().plans),
                plans=tuple(load_catalog().plans),
                reserved_cores_per_node=settings.reserved_cores_per_node,
                reserved_memory_mib_per_node=settings.reserved_memory_mib_per_node,
            )
        return config
