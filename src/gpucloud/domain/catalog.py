"""What we sell and where: regions, GPU models, instance types (plans) and images.

Plain values; the shipped catalog lives in `gpucloud/data/*.toml` and is loaded by
`gpucloud.catalog`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GPU_CAPABILITY = "GPU Linodes"


@dataclass(frozen=True)
class Region:
    id: str
    label: str
    country: str
    capabilities: tuple[str, ...]
    site_type: str = "core"
    status: str = "ok"
    resolvers_ipv4: str = ""
    resolvers_ipv6: str = ""
    ipv4_pool: str = "100.64.0.0/16"  # instance addresses are drawn from these networks
    ipv6_pool: str = "2001:db8::/64"


@dataclass(frozen=True)
class GpuModel:
    """A GPU product we sell, recognised on hosts by PCI vendor and device ids."""

    id: str
    name: str
    vendor_id: int
    device_ids: tuple[int, ...]
    memory_gib: int

    def matches(self, vendor_id: int, device_id: int) -> bool:
        return vendor_id == self.vendor_id and device_id in self.device_ids


@dataclass(frozen=True)
class Plan:
    """A Linode instance type. `gpus` > 0 makes it a dedicated, NUMA-pinned GPU plan."""

    id: str
    label: str
    type_class: str
    vcpus: int
    memory_mib: int
    disk_mib: int
    transfer_gb: int
    network_out_mbits: int
    price_hourly: float
    price_monthly: float
    backups_hourly: float = 0.0
    backups_monthly: float = 0.0
    gpus: int = 0
    gpu_model: str | None = None
    successor: str | None = None

    @property
    def is_gpu(self) -> bool:
        return self.gpus > 0

    @property
    def dedicated_cpus(self) -> bool:
        """GPU and dedicated plans get whole pinned cores; the others share an overcommitted pool."""
        return self.is_gpu or self.type_class == "dedicated"


@dataclass(frozen=True)
class Image:
    id: str
    label: str
    vendor: str
    size_mib: int
    created: str
    description: str = ""
    deprecated: bool = False
    eol: str | None = None
    capabilities: tuple[str, ...] = field(default_factory=lambda: ("cloud-init",))


@dataclass(frozen=True)
class Catalog:
    regions: tuple[Region, ...]
    gpu_models: tuple[GpuModel, ...]
    plans: tuple[Plan, ...]
    images: tuple[Image, ...]

    def region(self, region_id: str) -> Region | None:
        return next((r for r in self.regions if r.id == region_id), None)

    def find_region(self, text: str) -> Region | None:
        """A region by id or by city, as people type them: 'ap-west', 'Mumbai', 'mumbai, in'
        and 'Mumbai, IN' all find ap-west (case and surrounding spaces ignored). None when
        nothing or more than one region matches."""
        wanted = " ".join(text.split()).casefold()
        if not wanted:
            return None
        for region in self.regions:
            if wanted in (region.id.casefold(), region.label.casefold()):
                return region
        cities = [r for r in self.regions if r.label.split(",")[0].strip().casefold() == wanted]
        if not cities:  # 'tokyo' for 'Tokyo 2, JP', when only one city starts so
            cities = [r for r in self.regions if r.label.casefold().startswith(wanted)]
        return cities[0] if len(cities) == 1 else None

    def plan(self, plan_id: str) -> Plan | None:
        return next((p for p in self.plans if p.id == plan_id), None)

    def image(self, image_id: str) -> Image | None:
        return next((i for i in self.images if i.id == image_id), None)

    def gpu_model(self, model_id: str) -> GpuModel | None:
        return next((m for m in self.gpu_models if m.id == model_id), None)

    def model_for_device(self, vendor_id: int, device_id: int) -> GpuModel | None:
        return next((m for m in self.gpu_models if m.matches(vendor_id, device_id)), None)

    def gpu_plans(self, model_id: str | None = None) -> tuple[Plan, ...]:
        return tuple(p for p in self.plans if p.is_gpu and (model_id is None or p.gpu_model == model_id))
