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
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from gpucloud.domain import numa_fit
from gpucloud.domain.catalog import Plan
from gpucloud.domain.host_state import HostState
from gpucloud.domain.placement import NoRoom, PlacementConfig, PlacementRequest

UNAVAILABLE_REASONS = (
    "host-draining",
    "host-maintenance",
    "host-down",
    "faulty",
    "reserved",
    "iommu-blocker",
    "numa-unknown",
)


CLAIMED, FREE = "claimed", "free"


class GpuState(NamedTuple):
    address: str
    model: str
    state: str  # CLAIMED, FREE (placement may hand it out now), or one of UNAVAILABLE_REASONS
    staff: bool = False  # claimed by a staff account


def gpu_states(host: HostState, config: PlacementConfig) -> list[GpuState]:
    """Every GPU placement knows on the host, and whether it is claimed, free, or why not.

    The one rule every view uses (capacity, hosts, a host's page, the dashboard): a GPU is
    free only when placement may hand it out now. Otherwise it is counted under its first
    reason: the GPU's own (faulty, reserved, IOMMU blocker), then the host's status, then an
    unknown NUMA node under the policy 'required'. Claimed GPUs stay claimed whatever the host."""
    cfg = config.for_host(host)
    host_reason = None if host.status == numa_fit.ACTIVE else f"host-{host.status}"
    out = [GpuState(g.address, g.model, CLAIMED, g.staff) for g in host.claimed_gpus]
    out += [GpuState(g.address, g.model, g.reason) for g in host.unavailable_gpus]
    out += [GpuState(g.address, g.model, host_reason or FREE) for n in host.nodes for g in n.gpus]
    unknown = host_reason or ("numa-unknown" if cfg.numa_unknown_policy == "required" else FREE)
    out += [GpuState(g.address, g.model, unknown) for g in host.numa_unknown_gpus]
    return sorted(out)


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

    total = claimed + free + unavailable, each GPU counted as `gpu_states` says (unavailable
    ones under their first reason). Stranded GPUs are free GPUs that stay idle whichever
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
        for gpu in gpu_states(host, config):
            r = row(host.region, gpu.model)
            if gpu.state == CLAIMED:
                r["claimed"] += 1
                r["claimed_staff" if gpu.staff else "claimed_customer"] += 1
            elif gpu.state == FREE:
                r["free"] += 1
            else:
                unavailable(r, gpu.state)
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


# --- why a GPU plan is refused --------------------------------------------------------------

# What an unavailable reason means, in the words an operator or a customer reads.
REASON_WORDS = {
    "host-draining": "host draining",
    "host-maintenance": "host in maintenance",
    "host-down": "host down",
    "faulty": "faulty",
    "reserved": "reserved",
    "iommu-blocker": "IOMMU group shared with a host device",
    "numa-unknown": "NUMA node unknown",
}


def reason_words(reasons: Mapping[str, int]) -> str:
    """{'host-draining': 2, 'faulty': 1} -> 'faulty 1, host draining 2'."""
    return ", ".join(f"{REASON_WORDS.get(k, k)} {n}" for k, n in sorted(reasons.items()))


def _gpus(n: int, model: str) -> str:
    return f"{n} {model} GPU" + ("" if n == 1 else "s")


def explain_refusal(request: PlacementRequest, hosts: Sequence[HostState], config: PlacementConfig,
                    refusal: NoRoom, *, where: str, model_name: str) -> NoRoom:
    """The refusal of an unpinned GPU request, told from the region's GPU counts (the same
    counts `capacity_rows` gives): no host with the model, every GPU claimed, the rest out of
    service and why, too few free, or free but stranded (and by what). `where` names the
    region for people ('ap-west (Mumbai, IN)'); `refusal` is placement's own answer, whose
    code says what ran out when GPUs are free but stranded."""
    if not request.gpus or request.host_id is not None:
        return refusal
    hosts = [h for h in hosts if h.region == request.region]
    found = [r for r in capacity_rows(hosts, (), config, request.region) if r["gpu_model"] == request.gpu_model]
    if not found or not found[0]["total"]:
        return NoRoom("no-model", f"No host in region {where} has {model_name} GPUs.")
    row, wanted = found[0], request.gpus
    model = str(row["gpu_model"])
    total, claimed, free, out = row["total"], row["claimed"], row["free"], row["unavailable"]
    why = reason_words(row["unavailable_reasons"])
    if not free:
        if not out:
            return NoRoom("all-claimed", f"All {_gpus(total, model_name)} in {where} are claimed.")
        if not claimed:
            return NoRoom("out-of-service", f"All {_gpus(total, model_name)} in {where} are out of service ({why}).")
        return NoRoom("all-claimed", f"{claimed} of the {_gpus(total, model_name)} in {where} are claimed; "
                                     f"the rest are out of service ({why}).")
    held = f"{claimed} claimed" + (f", {out} out of service: {why}" if out else "")
    if free < wanted:
        return NoRoom("no-free-gpus", f"Only {_gpus(free, model_name)} free in {where} ({held}); "
                                      f"the plan takes {wanted}.")
    most = max((numa_fit.placeable_free(h.shape, config.for_host(h).numa_unknown_policy).get(model, 0)
                for h in hosts if h.status == numa_fit.ACTIVE), default=0)
    if most < wanted:
        detail = f"no host has {wanted} free (at most {most} on one host)"
    else:
        ran_out = {"no-cores": "cores", "no-memory": "memory"}.get(refusal.code, "cores or memory")
        detail = (f"no host has {request.vcpus} vCPUs (whole cores) and {request.memory_mib / 1024:g} GiB of "
                  f"memory free on the NUMA node(s) beside {wanted} of them ({ran_out} ran out)")
    return NoRoom("stranded", f"{_gpus(free, model_name)} {'is' if free == 1 else 'are'} free in {where} "
                              f"({held}), but stranded: {detail}.")


def unlock_hints(row: Mapping | None, plans: Sequence[Plan], *, model_name: str, gpu_region: bool) -> list[str]:
    """What stands between a region's GPUs of one model and more sales, from its capacity row
    (None: no GPU of the model there): no such GPUs, all claimed, unplaceable ones and why,
    free GPUs that are stranded (and for which plan sizes no fit is left)."""
    if not gpu_region:
        return ["the region offers no GPU plans"]
    if row is None or not row["total"]:
        return [f"no host has {model_name} GPUs"]
    hints = []
    if not row["free"] and not row["unavailable"]:
        hints.append(f"all {row['total']} claimed")
    if row["unavailable"]:
        hints.append(f"{row['unavailable']} unplaceable ({reason_words(row['unavailable_reasons'])}): "
                     "fixing them unlocks more")
    sizes = sorted({p.gpus for p in plans if p.gpus <= row["free"] and not row["sellable"].get(p.id, 0)})
    if sizes:
        fits = " or ".join(f"{n}-GPU" for n in sizes)
        hints.append(f"{_gpus(row['free'], model_name)} free but stranded: no {fits} fit")
    elif row["stranded"]:
        hints.append(f"{row['stranded']} free but stranded: no cores or memory beside them")
    return hints
