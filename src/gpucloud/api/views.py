"""Our objects in Linode's JSON shapes."""

from __future__ import annotations

from gpucloud.domain.catalog import Plan, Region


def page(items: list[dict], page_no: int = 1, page_size: int = 100) -> dict:
    total = len(items)
    pages = max(1, -(-total // page_size))
    page_no = min(max(page_no, 1), pages)
    start = (page_no - 1) * page_size
    return {"data": items[start : start + page_size], "page": page_no, "pages": pages, "results": total}


def plan(p: Plan) -> dict:
    return {
        "id": p.id,
        "label": p.label,
        "class": p.type_class,
        "disk": p.disk_mib,
        "memory": p.memory_mib,
        "vcpus": p.vcpus,
        "gpus": p.gpus,
        "accelerated_devices": 0,
        "transfer": p.transfer_gb,
        "network_out": p.network_out_mbits,
        "price": {"hourly": p.price_hourly, "monthly": p.price_monthly},
        "region_prices": [],
        "addons": {"backups": {"price": {"hourly": p.backups_hourly, "monthly": p.backups_monthly},
                               "region_prices": []}},
        "successor": p.successor,
    }


def region(r: Region) -> dict:
    return {
        "id": r.id,
        "label": r.label,
        "country": r.country,
        "capabilities": list(r.capabilities),
        "status": r.status,
        "resolvers": {"ipv4": r.resolvers_ipv4, "ipv6": r.resolvers_ipv6},
        "placement_group_limits": {"maximum_pgs_per_customer": None, "maximum_linodes_per_pg": 5,
                                   "maximum_linodes_per_flexible_pg": 5},
        "site_type": r.site_type,
        "monitors": {"alerts": [], "metrics": []},
    }
