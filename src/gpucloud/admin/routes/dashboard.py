"""The inventory dashboard: GPUs per region and model, sellable per plan, and the chart."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from gpucloud.admin.charts import capacity_chart
from gpucloud.admin.rendering import page
from gpucloud.admin.session import Viewer, viewer
from gpucloud.catalog import load_catalog
from gpucloud.clock import utcnow
from gpucloud.config import Settings
from gpucloud.services import capacity_samples
from gpucloud.services.capacity import capacity, pack_mix, plan_words, sellable_table
from gpucloud.services.hosts import list_hosts
from gpucloud.store.db import Database

router = APIRouter()

RANGES = {"6h": timedelta(hours=6), "24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
FIELDS = ("total", "claimed", "claimed_customer", "claimed_staff", "free", "unavailable", "stranded")


@router.get("/")
def dashboard(request: Request, range: str = "24h", region: str = "", model: str = "",
              _: Viewer = Depends(viewer)) -> Response:
    admin = request.app.state.admin
    rows = capacity(admin.db, admin.settings)
    totals = {f: sum(r[f] for r in rows) for f in FIELDS}
    reasons: Counter = Counter()
    for r in rows:
        reasons.update(r["unavailable_reasons"])
    hosts = Counter(h["status"] for h in list_hosts(admin.db))

    span = RANGES.get(range, RANGES["24h"])
    now = utcnow()
    points = capacity_samples.history(admin.db, now - span, region=region or None, gpu_model=model or None)
    chosen = [r for r in rows if (not region or r["region"] == region) and (not model or r["gpu_model"] == model)]
    points.append({"at": now, **{f: sum(r[f] for r in chosen) for f in ("total", "claimed", "free", "unavailable")}})

    catalog = load_catalog()
    plans = {p.id: {"label": p.label, "short": plan_words(p)} for p in catalog.plans if p.is_gpu}
    return page(request, "dashboard.html", {
        "nav": "dashboard", "rows": rows, "totals": totals, "reasons": sorted(reasons.items()), "hosts": hosts,
        "chart": capacity_chart(points, now - span, now), "range": range if range in RANGES else "24h",
        "ranges": list(RANGES), "region": region, "model": model, "plans": plans,
        "models": {m.id: m.name for m in catalog.gpu_models},
        "sample_minutes": admin.sampler.every_seconds // 60,
    })


@router.get("/sellable")
def sellable(request: Request, region: str = "", _: Viewer = Depends(viewer)) -> Response:
    """Region (city) × plan: how many more can be sold now, zeros shown, and what would unlock
    more. `region` narrows it to one region, named by id or city ('Mumbai')."""
    admin = request.app.state.admin
    table = sellable_table(admin.db, admin.settings)
    found = load_catalog().find_region(region) if region.strip() else None
    if found is not None:
        for model in table:
            model["regions"] = [r for r in model["regions"] if r["region"] == found.id]
    mixes = demand_mixes(admin.db, admin.settings, found.id if found is not None else None)
    for model in table:
        model["mix"] = mixes.get(model["model"], [])
    return page(request, "sellable.html", {
        "nav": "sellable", "table": table, "region": region, "found": found,
        "unknown": bool(region.strip()) and found is None,
    })


def demand_mixes(db: Database, settings: Settings, region: str | None) -> dict[str, list[dict]]:
    """GPU model -> the demand mixes `pack` keeps room for, as `gpucloud capacity` prints them:
    one per region that learnt its own from its creates, then the one every other region uses
    (the operator's `placement_demand_mix`, or every GPU plan alike). Empty unless the policy
    is `pack` (the others keep no room for anything)."""
    if settings.placement_policy != "pack":
        return {}
    catalog = load_catalog()
    plans = {p.id: p for p in catalog.plans}
    cities = {r.id: r.label for r in catalog.regions}
    default = "operator" if settings.placement_demand_mix else "default"
    out: dict[str, list[dict]] = {}
    for (where, model), shares in sorted(pack_mix(db, settings).items(), key=lambda e: (not e[0][0], e[0])):
        if region is not None and where not in ("", region):
            continue
        out.setdefault(model, []).append({
            "region": where, "city": cities.get(where, where), "source": "learnt" if where else default,
            "shares": [{"plan": p, "short": plan_words(plans[p]), "share": share} for p, share in shares]})
    return out
