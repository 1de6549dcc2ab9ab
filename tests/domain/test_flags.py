"""Flag evaluation: states, the stable percentage, overrides, expiry, staff, the GPU gates."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpucloud.catalog import load_catalog
from gpucloud.domain import flags
from gpucloud.domain.flags import Flag, FlagError, Override, evaluate

NOW = datetime(2026, 7, 1, 12, 0)
KEY = flags.GPU_INSTANCES
ACCOUNTS = range(1, 10_001)


def on_for(flag: Flag, account_id: int | None, *, staff: bool = False, overrides=()) -> bool:
    return evaluate(flag, account_id, staff, overrides, NOW)


def share(flag: Flag) -> float:
    return sum(on_for(flag, a) for a in ACCOUNTS) / len(ACCOUNTS)


def test_each_state_for_a_customer_a_staff_account_and_an_anonymous_caller():
    customer, staff = 42, 7
    assert [on_for(Flag(KEY, s), customer) for s in ("off", "staff", "on")] == [False, False, True]
    assert [on_for(Flag(KEY, s), staff, staff=True) for s in ("off", "staff", "on")] == [False, True, True]
    assert [on_for(Flag(KEY, s), None) for s in ("off", "staff", "on")] == [False, False, True]
    assert on_for(Flag(KEY, "percent", 100), customer) and not on_for(Flag(KEY, "percent", 0), customer)
    assert not on_for(Flag(KEY, "percent", 100), None)  # no account, no bucket


def test_staff_keep_a_flag_in_percent_state_even_at_zero():
    assert on_for(Flag(KEY, "percent", 0), 7, staff=True)


def test_a_rollout_only_ever_adds_accounts():
    """off ⊆ staff ⊆ percent 1 ⊆ ... ⊆ percent 100 ⊆ on, for customers and staff alike."""
    stages = [Flag(KEY, "off"), Flag(KEY, "staff")] + [Flag(KEY, "percent", p) for p in range(0, 101, 5)] \
        + [Flag(KEY, "on")]
    for account in range(1, 500):
        for staff in (False, True):
            answers = [on_for(f, account, staff=staff) for f in stages]
            assert answers == sorted(answers), (account, staff, answers)


@given(account=st.integers(min_value=1, max_value=2**62), percent=st.integers(0, 100))
def test_a_percentage_answer_is_stable_for_an_account(account, percent):
    flag = Flag(KEY, "percent", percent)
    first = on_for(flag, account)
    assert all(on_for(flag, account) == first for _ in range(3))
    assert on_for(Flag(KEY, "percent", percent), account) == first  # a fresh, equal flag: same answer
    assert first == (flags.bucket(KEY, account) < percent)


def test_buckets_are_pinned_so_they_survive_a_reimplementation():
    """Changing the hash would silently move customers in and out of a running rollout."""
    assert [flags.bucket("gpu-instances", a) for a in (1, 2, 3, 1000)] == [35, 10, 61, 37]
    assert [flags.bucket("gpu-region-ap-south", a) for a in (1, 2, 3)] == [31, 19, 90]


@pytest.mark.parametrize("percent", [1, 10, 50, 90])
def test_the_share_of_10000_accounts_is_within_4_sigma(percent):
    """Binomial(n=10,000, p): sigma = sqrt(n p (1-p)), 30 accounts at 10%. The hash is fixed, so
    this cannot flake; 4 sigma is the bound a fair coin would break once in ~16,000 key choices."""
    p, n = percent / 100, len(ACCOUNTS)
    tolerance = 4 * math.sqrt(p * (1 - p) / n)
    assert abs(share(Flag(KEY, "percent", percent)) - p) <= tolerance


def test_each_flag_picks_its_own_accounts():
    """Two flags at 10% overlap on ~1% of accounts (independent), not on the same 10%."""
    a = {x for x in ACCOUNTS if on_for(Flag("gpu-instances", "percent", 10), x)}
    b = {x for x in ACCOUNTS if on_for(Flag("gpu-region-ap-south", "percent", 10), x)}
    overlap = len(a & b) / len(ACCOUNTS)
    assert abs(overlap - 0.01) <= 4 * math.sqrt(0.01 * 0.99 / len(ACCOUNTS))


def test_overrides_beat_every_state():
    allow, deny = Override(42, True), Override(42, False)
    for flag in (Flag(KEY, "off"), Flag(KEY, "staff"), Flag(KEY, "percent", 50), Flag(KEY, "on")):
        assert on_for(flag, 42, overrides=[allow])
        assert not on_for(flag, 42, overrides=[deny])
        assert not on_for(flag, 42, staff=True, overrides=[deny])  # a deny holds for staff too


def test_another_accounts_override_does_not_count():
    assert not on_for(Flag(KEY, "off"), 42, overrides=[Override(43, True)])
    assert not on_for(Flag(KEY, "off"), None, overrides=[Override(43, True)])


def test_an_override_counts_until_its_expiry_and_not_after():
    trial = Override(42, True, expires_at=NOW + timedelta(days=7))
    off = Flag(KEY, "off")
    assert evaluate(off, 42, False, [trial], NOW)
    assert evaluate(off, 42, False, [trial], NOW + timedelta(days=7) - timedelta(seconds=1))
    assert not evaluate(off, 42, False, [trial], NOW + timedelta(days=7))
    blocked = Override(42, False, expires_at=NOW + timedelta(hours=1))
    assert not evaluate(Flag(KEY, "on"), 42, False, [blocked], NOW)
    assert evaluate(Flag(KEY, "on"), 42, False, [blocked], NOW + timedelta(hours=2))


@pytest.mark.parametrize("state, percent, message", [
    ("maybe", None, "state must be one of"),
    ("percent", None, "needs a percentage"),
    ("percent", 101, "0 to 100"),
    ("percent", -1, "0 to 100"),
    ("percent", True, "0 to 100"),
    ("on", 30, "goes with state 'percent' only"),
])
def test_impossible_states_are_refused(state, percent, message):
    with pytest.raises(FlagError, match=message):
        flags.check_state(state, percent)


def test_check_state_normalises_the_percent():
    assert flags.check_state("on", None) == ("on", 0)
    assert flags.check_state("percent", 0) == ("percent", 0)
    assert flags.check_state("percent", 100) == ("percent", 100)


def test_known_flags_are_the_global_one_and_one_per_gpu_region():
    catalog = load_catalog()
    known = flags.known_flags(catalog)
    gpu_regions = [r.id for r in catalog.regions if "GPU Linodes" in r.capabilities]
    assert gpu_regions and len(gpu_regions) < len(catalog.regions)
    assert list(known) == ["gpu-instances"] + [f"gpu-region-{r}" for r in gpu_regions]
    assert flags.gpu_region_ids(catalog) == tuple(gpu_regions)
    assert all(spec.description for spec in known.values())


def test_gpu_gates_combine_the_global_flag_and_the_region_flags():
    regions = ("us-east", "ap-south")

    def only(*open_keys):
        return lambda key: key in open_keys

    assert flags.gpu_allowed_in_region(only("gpu-instances"), "ap-south", regions)
    assert not flags.gpu_allowed_in_region(only("gpu-instances"), "us-central", regions)  # no GPUs there
    assert flags.gpu_allowed_in_region(only("gpu-region-ap-south"), "ap-south", regions)
    assert not flags.gpu_allowed_in_region(only("gpu-region-ap-south"), "us-east", regions)
    assert flags.gpu_types_visible(only("gpu-region-ap-south"), regions)
    assert not flags.gpu_types_visible(only(), regions)
