"""Inventory and sellable capacity of the fleet, as operators see it in the CLI and the admin
interface (the same numbers from the same function)."""

from __future__ import annotations

from gpucloud.catalog import load_catalog
from gpucloud.config import Settings
from gpucloud.domain.capacity import capacity_rows
from gpucloud.services.placement_config import placement_config
from gpucloud.store.db import Database
from gpucloud.store.host_states import all_states


def capacity(db: Database, settings: Settings, region: str | None = None) -> list[dict]:
    """One row per region and GPU model: total, claimed (staff and customers apart), free,
    unavailable (with reasons), stranded, and for each plan how many more can be sold now."""
    with db.read() as s:
        states = all_states(s, placement_config(settings), region)
    return capacity_rows(states, load_catalog().plans, placement_config(settings), region)
