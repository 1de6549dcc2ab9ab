"""Feature flags: which flags exist, and whether one is on for an account. Pure, no I/O.

A flag moves through `off -> staff -> percent N -> on`. Each stage includes the one before it,
so a rollout only ever adds accounts: staff keep a flag in `percent` state, and an account in
the first N% stays in when N grows (its bucket is fixed by a hash of the flag key and the
account id). Per-account overrides (allow or deny) beat the state; an override with an expiry
stops counting at that instant, which is how a one-week trial for one account is given.

Every flag key the code uses is named here, once (`known_flags`), so the database can be
checked for flags the code no longer knows, and those can be retired.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from gpucloud.domain.catalog import GPU_CAPABILITY, Catalog

STATES = ("off", "staff", "percent", "on")

# --- the known flags ------------------------------------------------------------------------

GPU_INSTANCES = "gpu-instances"
REGION_FLAG_PREFIX = "gpu-region-"


@dataclass(frozen=True)
class FlagSpec:
    key: str
    description: str


def region_flag_key(region_id: str) -> str:
    """The flag that opens one region's GPU capacity on its own, e.g. `gpu-region-ap-south`."""
    return REGION_FLAG_PREFIX + region_id


def known_flags(catalog: Catalog) -> dict[str, FlagSpec]:
    """Every flag the code knows, by key: `gpu-instances` and one per GPU region of the catalog."""
    specs = [FlagSpec(GPU_INSTANCES, "GPU plans in every GPU region: listed in types, the 'GPU Linodes' "
                                     "capability, create, resize into and boot.")]
    for region in catalog.regions:
        if GPU_CAPABILITY in region.capabilities:
            specs.append(FlagSpec(region_flag_key(region.id),
                                  f"GPU plans in {region.id} only, opened on their own (with {GPU_INSTANCES} closed)."))
    return {spec.key: spec for spec in specs}


# --- the model ------------------------------------------------------------------------------


class FlagError(ValueError):
    """A flag state that cannot exist (unknown state, percent out of range)."""


@dataclass(frozen=True)
class Flag:
    key: str
    state: str = "off"
    percent: int = 0  # meaningful in `percent` state only; 0 otherwise

    def __post_init__(self) -> None:
        check_state(self.state, self.percent if self.state == "percent" else None)


@dataclass(frozen=True)
class Override:
    """An account's exception to a flag's state: allow (True) or deny (False), maybe until a time."""

    account_id: int
    allow: bool
    expires_at: datetime | None = None  # naive UTC; None = until removed

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


def check_state(state: str, percent: int | None) -> tuple[str, int]:
    """The (state, percent) to store, or FlagError: `percent` goes with state `percent` only."""
    if state not in STATES:
        raise FlagError(f"state must be one of {', '.join(STATES)}, not {state!r}")
    if state != "percent":
        if percent not in (None, 0):
            raise FlagError(f"a percentage goes with state 'percent' only, not {state!r}")
        return state, 0
    if percent is None:
        raise FlagError("state 'percent' needs a percentage (0 to 100)")
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise FlagError(f"percentage must be a whole number from 0 to 100, not {percent!r}")
    return state, percent


# --- evaluation -----------------------------------------------------------------------------


def bucket(key: str, account_id: int) -> int:
    """The account's fixed place, 0..99, in this flag's rollout. Hashing the key too means each
    flag's first 10% are different accounts, not the same guinea pigs every time."""
    digest = hashlib.sha256(f"{key}:{account_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def evaluate(flag: Flag, account_id: int | None, is_staff: bool, overrides: Iterable[Override],
             now: datetime) -> bool:
    """Whether `flag` is on for the account. `account_id` None is an anonymous caller (e.g. an
    unauthenticated GET /v4/linode/types): it gets `on` flags only. An active override of this
    account beats the state; expired ones and other accounts' are ignored."""
    return decide(flag, account_id, is_staff, overrides, now)[0]


def decide(flag: Flag, account_id: int | None, is_staff: bool, overrides: Iterable[Override],
           now: datetime) -> tuple[bool, str]:
    """`evaluate`'s answer and why, in words ('in the first 10 %: place 7', 'staff', ...):
    what shows an operator which accounts a rollout holds."""
    if account_id is not None:
        for override in overrides:
            if override.account_id == account_id and override.active(now):
                return override.allow, "allowed by override" if override.allow else "denied by override"
    if flag.state == "on":
        return True, "on for everyone"
    if account_id is None or flag.state == "off":
        return False, "off" if flag.state == "off" else "anonymous"
    if is_staff:  # staff state, and percent state too: rollout stages only ever add accounts
        return True, "staff"
    if flag.state != "percent":
        return False, "staff only"
    place = bucket(flag.key, account_id)
    if place < flag.percent:
        return True, f"in the first {flag.percent} %: place {place}"
    return False, f"place {place}, not in the first {flag.percent} %"


# --- what the GPU flags gate ----------------------------------------------------------------

IsEnabled = Callable[[str], bool]


def gpu_region_ids(catalog: Catalog) -> tuple[str, ...]:
    """Regions with the 'GPU Linodes' capability in the catalog; each has its own flag."""
    return tuple(r.id for r in catalog.regions if GPU_CAPABILITY in r.capabilities)


def gpu_allowed_in_region(is_enabled: IsEnabled, region_id: str, gpu_regions: Iterable[str]) -> bool:
    """GPU plans in one region: never where the catalog has no GPUs; elsewhere open through
    `gpu-instances`, or through that region's own flag."""
    if region_id not in gpu_regions:
        return False
    return is_enabled(GPU_INSTANCES) or is_enabled(region_flag_key(region_id))


def gpu_types_visible(is_enabled: IsEnabled, gpu_regions: Iterable[str]) -> bool:
    """GPU types are listed when the account may use them in at least one region."""
    return is_enabled(GPU_INSTANCES) or any(is_enabled(region_flag_key(r)) for r in gpu_regions)
