"""Loads the catalog shipped as data files inside the package (`gpucloud/data/*.toml`)."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

from gpucloud.domain.catalog import GPU_CAPABILITY, Catalog, GpuModel, Image, Plan, Region

# What every region serves (Linode's capability names); GPU regions add GPU_CAPABILITY. Only
# what is really offered: no Backups, Block Storage, Cloud Firewall, NodeBalancers, Kubernetes,
# StackScripts, VLANs, placement groups or disk encryption (api/unoffered.py says so to clients).
BASE_CAPABILITIES = ("Linodes", "Metadata")  # Metadata: user data reaches the guest in its NoCloud seed


def _read(name: str) -> dict:
    return tomllib.loads(resources.files("gpucloud.data").joinpath(name).read_text())


def _region(raw: dict) -> Region:
    caps = BASE_CAPABILITIES + ((GPU_CAPABILITY,) if raw.pop("gpu", False) else ())
    return Region(capabilities=caps, **raw)


@cache
def load_catalog() -> Catalog:
    """The catalog is immutable for the life of the process; read it once."""
    return Catalog(
        regions=tuple(_region(dict(r)) for r in _read("regions.toml")["region"]),
        gpu_models=tuple(
            GpuModel(**{**m, "device_ids": tuple(m["device_ids"])}) for m in _read("gpu_models.toml")["gpu_model"]
        ),
        plans=tuple(Plan(**p) for p in _read("types.toml")["plan"]),
        images=tuple(Image(**i) for i in _read("images.toml")["image"]),
    )
