"""Inventory and sellable capacity of the fleet, as operators see it in the CLI and the admin
interface (the same numbers from the same function)."""

from __future__ import annotations

from collections.abc import Iterable

from gpucloud.catalog import load_catalog
from gpucloud.config import Settings
from gpucloud.domain.capacity import capacity_rows, sellable, unlock_hints
from gpucloud.domain.catalog import GPU_CAPABILITY, Plan
from gpucloud.domain.placement import PlacementRequest
from gpucloud.services import addresses
from gpucloud.services.placement_config import demand_mix_in_use, learn_demand
from gpucloud.store.db import Database
from gpucloud.store.host_states import all_states


def capacity(db: Database, settings: Settings, region: str | None = None) -> list[dict]:
    """One row per region and GPU model: total, claimed (staff and customers apart), free,
    unavailable (with reasons), stranded, and for each plan how many more can be sold now
    (never more than the region has free IPv4 addresses: each instance takes one)."""
    with db.read() as s:
        config = learn_demand(s, settings)
        states = all_states(s, config, region)
    rows = capacity_rows(states, load_catalog().plans, config, region)
    addresses_free = free_ipv4(db, region)
    for row in rows:
        row["sellable"] = {plan: min(n, addresses_free.get(row["region"], 0)) for plan, n in row["sellable"].items()}
    return rows


def free_ipv4(db: Database, region: str | None = None) -> dict[str, int]:
    """Region -> IPv4 addresses its pools have free."""
    free: dict[str, int] = {}
    for pool in addresses.pools(db, region):
        if pool.family == "ipv4":
            free[pool.region] = free.get(pool.region, 0) + pool.free
    return free


def pack_mix(db: Database, settings: Settings) -> dict[tuple[str, str], list[tuple[str, float]]]:
    """The demand mix `pack` keeps room for now, per (region, GPU model); region '' = the default."""
    with db.read() as s:
        return demand_mix_in_use(learn_demand(s, settings))


def available(db: Database, settings: Settings, plans: Iterable[Plan], region: str | None = None) -> dict[
        tuple[str, str], bool]:
    """(region, plan id) -> whether one more instance of the plan can be created there now: the
    sellable figure `capacity` shows operators, > 0. Every region of the catalog (or `region`)."""
    with db.read() as s:
        config = learn_demand(s, settings)
        states = all_states(s, config, region)
    regions = [r.id for r in load_catalog().regions if region is None or r.id == region]
    addresses_free = free_ipv4(db, region)
    return {(r, p.id): addresses_free.get(r, 0) > 0 and sellable(PlacementRequest.for_plan(p, r), states, config) > 0
            for r in regions for p in plans}


def sellable_table(db: Database, settings: Settings) -> list[dict]:
    """The admin's Sellable view: for each GPU model, every region (its city too, zeros shown)
    and every plan of the model, how many more can be sold now, and what would unlock more.
    The numbers are `capacity`'s, unchanged."""
    catalog = load_catalog()
    rows = {(r["region"], r["gpu_model"]): r for r in capacity(db, settings)}
    table = []
    for model in catalog.gpu_models:
        plans = catalog.gpu_plans(model.id)
        regions = []
        for region in catalog.regions:
            row = rows.get((region.id, model.id))
            regions.append({
                "region": region.id, "city": region.label,
                "sellable": {p.id: row["sellable"].get(p.id, 0) if row else 0 for p in plans},
                **{k: row[k] if row else 0 for k in ("total", "claimed", "free", "unavailable", "stranded")},
                "hints": unlock_hints(row, plans, model_name=model.id,
                                      gpu_region=GPU_CAPABILITY in region.capabilities),
            })
        table.append({"model": model.id, "name": model.name,
                      "plans": [{"id": p.id, "label": p.label, "gpus": p.gpus, "short": plan_words(p)} for p in plans],
                      "regions": regions})
    return table


SIZES = {"s": "Small", "m": "Medium", "l": "Large"}


def plan_words(plan: Plan) -> str:
    """A GPU plan in a few words beside its model: '2 GPUs', '1 GPU · Medium'."""
    size = SIZES.get(plan.id.rsplit("-", 1)[-1], "")
    return f"{plan.gpus} GPU{'' if plan.gpus == 1 else 's'}" + (f" · {size}" if size else "")
