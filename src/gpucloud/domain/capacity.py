"""How many GPUs we have, hold and can still sell, per region and GPU model.

"Sellable" is a promise, answered as Ganeti's `hspace` does: fill a copy of the free state
with one plan, placement after placement, with the very same rules and policy as `place`.
It is computed per host and summed, which is exact: `place` ranks a host by that host's own
state alone, so each host receives, in a fleet-wide fill, exactly the sequence of instances
it would receive if it were filled alone. Per-host fills are memoised by free shape, so a
fleet of many identical hosts costs a few distinct fills.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from gpucloud.domain import numa_fit
from gpucloud.domain.catalog import Plan
from gpucloud.domain.host_state import HostState
from gpucloud.domain.placement import PlacementConfig, PlacementRequest

UNAVAILABLE_REASONS = (
    "host-draining",
    "host-maintenance",
    "host-down",
    "faulty",
    "reserved",
    "iommu-blocker",
    "numa-unknown",
)


def fill_count(host: HostState, request: PlacementRequest, config: PlacementConfig) -> int:
    """How many instances of `request` this host takes now, placed one after another."""
    if request.host_id is not None:
        raise ValueError("capacity is counted for unpinned requests")
    if host.region != request.region:
        return 0
    return numa_fit.fill_count(host.shape, request.need, config.for_host(host))


def sellable(request: PlacementRequest, hosts: Iterable[HostState], config: PlacementConfig) -> int:
    """How many more instances of `request` can be created right now: N succeed, the N+1th is refused."""
    shapes = Counter(h.shape for h in hosts if h.region == request.region)
    need = request.need
    return sum(n * numa_fit.fill_count(s, need, config.for_host(s)) for s, n in shapes.items())


def capacity_rows(
    hosts: Iterable[HostState], plans: Iterable[Plan], config: PlacementConfig, region: str | None = None
) -> list[dict]:
    """One row per region and GPU model, shaped for `gpucloud capacity --json` and the admin UI.

    total = claimed + free + unavailable. Unavailable GPUs are counted under their first reason:
    the GPU's own (faulty, reserved, IOMMU blocker), then the host's status, then an unknown
    NUMA node under the policy 'required'. Stranded GPUs are free GPUs that stay idle whichever
    single plan of their model the host is filled with (no cores or memory left beside them).
    """
    plans = [p for p in plans if p.is_gpu]
    hosts = [h for h in hosts if region is None or h.region == region]
    rows: dict[tuple[str, str], dict] = {}

    def row(region_id: str, model: str) -> dict:
        key = (region_id, model)
        if key not in rows:
            rows[key] = {
                "region": region_id,
                "gpu_model": model,
                "total": 0,
                "claimed": 0,
                "claimed_staff": 0,
                "claimed_customer": 0,
                "free": 0,
                "unavailable": 0,
                "unavailable_reasons": {},
                "stranded": 0,
                "sellable": {p.id: 0 for p in plans if p.gpu_model == model},
            }
        return rows[key]

    def unavailable(r: dict, reason: str) -> None:
        r["unavailable"] += 1
        r["unavailable_reasons"][reason] = r["unavailable_reasons"].get(reason, 0) + 1

    shapes: Counter = Counter()
    for host in hosts:
        cfg = config.for_host(host)
        for claimed in host.claimed_gpus:
            r = row(host.region, claimed.model)
            r["claimed"] += 1
            r["claimed_staff" if claimed.staff else "claimed_customer"] += 1
        for gone in host.unavailable_gpus:
            unavailable(row(host.region, gone.model), gone.reason)
        for gpu in (g for n in host.nodes for g in n.gpus):
            r = row(host.region, gpu.model)
            if host.status == numa_fit.ACTIVE:
                r["free"] += 1
            else:
                unavailable(r, f"host-{host.status}")
        for gpu in host.numa_unknown_gpus:
            r = row(host.region, gpu.model)
            if host.status != numa_fit.ACTIVE:
                unavailable(r, f"host-{host.status}")
            elif cfg.numa_unknown_policy == "required":
                unavailable(r, "numa-unknown")
            else:
                r["free"] += 1
        if host.status == numa_fit.ACTIVE:
            shapes[host.shape] += 1

    for shape, hosts_alike in shapes.items():
        cfg = config.for_host(shape)
        for model, free in numa_fit.placeable_free(shape, cfg.numa_unknown_policy).items():
            r = row(shape.region, model)
            used_best = 0
            for plan in plans:
                if plan.gpu_model != model:
                    continue
                n = numa_fit.fill_count(shape, PlacementRequest.for_plan(plan, shape.region).need, cfg)
                r["sellable"][plan.id] += n * hosts_alike
                used_best = max(used_best, n * plan.gpus)
            r["stranded"] += (free - used_best) * hosts_alike

    for r in rows.values():
        r["total"] = r["claimed"] + r["free"] + r["unavailable"]
    return [rows[k] for k in sorted(rows)]
