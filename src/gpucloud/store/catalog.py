"""Mirror the shipped catalog into its tables, so hosts and instances reference real rows."""

from __future__ import annotations

from sqlalchemy.orm import Session

from gpucloud.domain.addresses import pool_shape
from gpucloud.domain.catalog import Catalog
from gpucloud.store import addresses
from gpucloud.store.tables import GpuModelRow, InstanceTypeRow, RegionRow


def sync_catalog(session: Session, catalog: Catalog) -> None:
    """Insert or update every region, GPU model and plan. Rows the catalog dropped stay,
    because instances may still reference them. A region without address pools gets the
    catalog's `ipv4_pool` and `ipv6_pool` (operators add more with `gpucloud ip add`)."""
    for r in catalog.regions:
        session.merge(RegionRow(id=r.id, label=r.label, country=r.country))
    session.flush()
    for r in catalog.regions:
        if not addresses.pools(session, r.id):
            for network in (r.ipv4_pool, r.ipv6_pool):
                if network:
                    addresses.add(session, r.id, pool_shape(network), created_by="catalog")
    for m in catalog.gpu_models:
        session.merge(GpuModelRow(id=m.id, name=m.name, vendor_id=m.vendor_id, device_ids=list(m.device_ids)))
    session.flush()
    for p in catalog.plans:
        session.merge(
            InstanceTypeRow(
                id=p.id,
                label=p.label,
                type_class=p.type_class,
                vcpus=p.vcpus,
                memory_mib=p.memory_mib,
                disk_mib=p.disk_mib,
                gpus=p.gpus,
                gpu_model_id=p.gpu_model,
                price_hourly=p.price_hourly,
                price_monthly=p.price_monthly,
            )
        )
