"""Operating flags: state changes, overrides, seeding, retirement, audit, the version counter,
and that a refused or failed change leaves nothing behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from gpucloud.clock import utcnow
from gpucloud.errors import Conflict, GpucloudError, NotFound
from gpucloud.services import accounts, flags
from gpucloud.store import flags as q
from gpucloud.store.tables import AuditEntry, FeatureFlag, FlagOverride

GPU = "gpu-instances"


def _facts(db) -> dict:
    """Everything a flag change may write: compare before and after a refused one."""
    with db.read() as s:
        return {
            "flags": [(f.key, f.state, f.percent) for f in q.all_flags(s)],
            "overrides": [(o.flag_key, o.account_id, o.allow, o.expires_at) for o in q.overrides(s)],
            "audit": s.scalar(select(func.count()).select_from(AuditEntry)),
            "version": q.version(s),
        }


def _state(db, key=GPU) -> tuple[str, int]:
    view = flags.get_flag(db, key)
    return view.state, view.percent


@pytest.fixture
def customer(store_db):
    return accounts.create_account(store_db, "customer@example.com")


def test_a_known_flag_never_set_is_off_and_listed(store_db):
    views = {v.key: v for v in flags.list_flags(store_db)}
    assert views[GPU].state == "off" and views[GPU].known and not views[GPU].stored
    assert "gpu-region-ap-south" in views and "gpu-region-us-central" not in views  # no GPUs there
    assert _facts(store_db)["version"] == 0


def test_state_transitions_are_audited_and_bump_the_version(store_db):
    steps = [("staff", None), ("percent", 10), ("percent", 50), ("on", None), ("off", None)]
    for state, percent in steps:
        change = flags.set_state(store_db, GPU, state, percent, why=f"step {state}", actor="alice")
        assert change.changed
    assert _state(store_db) == ("off", 0)
    assert _facts(store_db)["version"] == len(steps)

    trail = list(reversed(flags.history(store_db, GPU)))
    assert [(e["before"], e["after"]) for e in trail] == [
        ({"state": "off", "percent": 0}, {"state": "staff", "percent": 0}),
        ({"state": "staff", "percent": 0}, {"state": "percent", "percent": 10}),
        ({"state": "percent", "percent": 10}, {"state": "percent", "percent": 50}),
        ({"state": "percent", "percent": 50}, {"state": "on", "percent": 0}),
        ({"state": "on", "percent": 0}, {"state": "off", "percent": 0}),
    ]
    assert {(e["actor"], e["action"]) for e in trail} == {("alice", "flag.set")}
    assert trail[1]["why"] == "step percent"
    assert all(abs(e["at"] - utcnow()) < timedelta(minutes=1) for e in trail)


def test_setting_the_same_state_again_writes_nothing(store_db):
    flags.set_state(store_db, GPU, "staff", why="start", actor="alice")
    before = _facts(store_db)
    change = flags.set_state(store_db, GPU, "staff", why="again", actor="bob")
    assert not change.changed and _facts(store_db) == before
    # nor does turning off a flag that was never stored
    assert not flags.set_state(store_db, "gpu-region-ap-south", "off", why="x", actor="bob").changed
    assert _facts(store_db) == before


@pytest.mark.parametrize("key, state, percent, why, message", [
    ("gpu-everything", "on", None, "launch", "unknown flag 'gpu-everything'; known flags: gpu-instances, "),
    (GPU, "percent", 101, "launch", "from 0 to 100, not 101"),
    (GPU, "percent", -5, "launch", "from 0 to 100, not -5"),
    (GPU, "percent", None, "launch", "needs a percentage"),
    (GPU, "on", 20, "launch", "goes with state 'percent' only"),
    (GPU, "sometimes", None, "launch", "state must be one of off, staff, percent, on"),
    (GPU, "on", None, "  ", "a reason is required"),
])
def test_bad_changes_are_refused_and_write_nothing(store_db, key, state, percent, why, message):
    flags.set_state(store_db, GPU, "staff", why="start", actor="alice")
    before = _facts(store_db)
    with pytest.raises(GpucloudError, match=message):
        flags.set_state(store_db, key, state, percent, why=why, actor="alice")
    assert _facts(store_db) == before


def test_the_unknown_flag_message_lists_every_known_one(store_db):
    with pytest.raises(GpucloudError) as err:
        flags.set_state(store_db, "gpu-region-mars", "on", why="x", actor="a")
    for key in flags.known():
        assert key in err.value.reason


def test_a_failure_inside_the_transaction_leaves_nothing_half_written(store_db, monkeypatch, customer):
    flags.set_state(store_db, GPU, "staff", why="start", actor="alice")
    before = _facts(store_db)

    def disk_full(_session):
        raise RuntimeError("disk full")

    monkeypatch.setattr(q, "bump_version", disk_full)  # fails after the row and the audit entry are written
    with pytest.raises(RuntimeError):
        flags.set_state(store_db, GPU, "on", why="launch", actor="alice")
    with pytest.raises(RuntimeError):
        flags.allow(store_db, "gpu-region-ap-south", customer.id, why="trial", actor="alice")
    assert _facts(store_db) == before


def test_allow_deny_and_clear_are_audited_overrides(store_db, customer):
    flags.allow(store_db, GPU, "customer@example.com", why="design partner", actor="alice")
    flags.deny(store_db, GPU, customer.id, why="abuse", actor="bob")
    (view,) = [v for v in flags.list_flags(store_db) if v.key == GPU]
    assert view.state == "off" and view.stored  # an override needs the flag's row; the state is untouched
    assert [(o.account_id, o.account_email, o.allow, o.active) for o in view.overrides] == [
        (customer.id, "customer@example.com", False, True)]

    flags.clear(store_db, GPU, customer.id, why="resolved", actor="carol")
    assert flags.get_flag(store_db, GPU).overrides == ()
    trail = list(reversed(flags.history(store_db, GPU)))
    override = {"account_id": customer.id, "expires_at": None}
    assert [(e["action"], e["actor"], e["before"], e["after"], e["why"]) for e in trail] == [
        ("flag.allow", "alice", None, {**override, "allow": True}, "design partner"),
        ("flag.deny", "bob", {**override, "allow": True}, {**override, "allow": False}, "abuse"),
        ("flag.clear", "carol", {**override, "allow": False}, None, "resolved"),
    ]
    assert _facts(store_db)["version"] == 3


def test_a_trial_until_a_date_is_stored_in_utc_and_shows_as_expired_after_it(store_db, customer):
    until = datetime.now(UTC) + timedelta(days=7)
    flags.allow(store_db, GPU, customer.id, until=until.astimezone(), why="one-week trial", actor="alice")
    (o,) = flags.get_flag(store_db, GPU).overrides
    assert abs(o.expires_at - until.replace(tzinfo=None)) < timedelta(seconds=1) and o.active
    with store_db.write() as s:  # a week later
        q.override(s, GPU, customer.id).expires_at = utcnow() - timedelta(seconds=1)
    (o,) = flags.get_flag(store_db, GPU).overrides
    assert not o.active


def test_bad_overrides_are_refused_and_write_nothing(store_db, customer):
    before = _facts(store_db)
    with pytest.raises(NotFound, match="no account nobody@example.com"):
        flags.allow(store_db, GPU, "nobody@example.com", why="x", actor="a")
    with pytest.raises(GpucloudError, match="--until must be in the future"):
        flags.allow(store_db, GPU, customer.id, until=utcnow() - timedelta(days=1), why="x", actor="a")
    with pytest.raises(GpucloudError, match="unknown flag 'gpu-typo'"):
        flags.allow(store_db, "gpu-typo", customer.id, why="x", actor="a")
    with pytest.raises(GpucloudError, match="a reason is required"):
        flags.deny(store_db, GPU, customer.id, why="", actor="a")
    with pytest.raises(NotFound, match="has no override on gpu-instances"):
        flags.clear(store_db, GPU, customer.id, why="x", actor="a")
    assert _facts(store_db) == before


def test_ensure_creates_once_and_never_undoes_an_operator(store_db):
    assert flags.ensure_flag_state(store_db, GPU, "staff", why="demo", actor="demo") is True
    assert _state(store_db) == ("staff", 0)
    flags.set_state(store_db, GPU, "on", why="launch day", actor="alice")
    assert flags.ensure_flag_state(store_db, GPU, "staff", why="demo", actor="demo") is False
    assert _state(store_db) == ("on", 0)
    assert [e["action"] for e in reversed(flags.history(store_db))] == ["flag.create", "flag.set"]
    create = flags.history(store_db)[-1]
    assert create["before"] is None and create["after"] == {"state": "staff", "percent": 0}
    with pytest.raises(GpucloudError, match="unknown flag"):
        flags.ensure_flag_state(store_db, "gpu-old", "on", why="demo", actor="demo")


def _leftover_flag(db, key: str, account_id: int | None = None) -> None:
    """A flag an older release created and this code no longer names."""
    with db.write() as s:
        s.add(FeatureFlag(key=key, description="old", state="on"))
        if account_id:
            s.flush()
            s.add(FlagOverride(flag_key=key, account_id=account_id, allow=False))


def test_flags_unknown_to_the_code_are_found_and_retired_with_their_overrides(store_db, customer):
    flags.ensure_flag_state(store_db, GPU, "staff", why="demo", actor="demo")
    assert flags.unknown_flags_in_db(store_db) == []
    _leftover_flag(store_db, "legacy-beta", customer.id)
    assert flags.unknown_flags_in_db(store_db) == ["legacy-beta"]
    listed = {v.key: v for v in flags.list_flags(store_db)}
    assert not listed["legacy-beta"].known and listed["legacy-beta"].description == "old"

    version = _facts(store_db)["version"]
    change = flags.retire(store_db, "legacy-beta", why="beta over", actor="alice")
    assert change.after is None
    assert flags.unknown_flags_in_db(store_db) == []
    assert _facts(store_db)["overrides"] == [] and _facts(store_db)["version"] == version + 1
    (entry,) = flags.history(store_db, "legacy-beta")
    assert entry["action"] == "flag.retire" and entry["why"] == "beta over" and entry["after"] is None
    assert entry["before"] == {"state": "on", "percent": 0,
                               "overrides": [{"account_id": customer.id, "allow": False, "expires_at": None}]}


def test_retire_refuses_known_and_missing_flags(store_db):
    flags.ensure_flag_state(store_db, GPU, "on", why="demo", actor="demo")
    with pytest.raises(Conflict, match="still known to the code"):
        flags.retire(store_db, GPU, why="x", actor="a")
    with pytest.raises(NotFound, match="no flag 'never-was'"):
        flags.retire(store_db, "never-was", why="x", actor="a")
    _leftover_flag(store_db, "legacy-beta")
    with pytest.raises(GpucloudError, match="a reason is required"):
        flags.retire(store_db, "legacy-beta", why="", actor="a")
    assert flags.unknown_flags_in_db(store_db) == ["legacy-beta"] and _state(store_db) == ("on", 0)


def test_history_is_newest_first_and_filters_by_flag(store_db):
    flags.set_state(store_db, GPU, "staff", why="one", actor="a")
    flags.set_state(store_db, "gpu-region-ap-south", "on", why="two", actor="a")
    flags.set_state(store_db, GPU, "on", why="three", actor="a")
    assert [e["why"] for e in flags.history(store_db)] == ["three", "two", "one"]
    assert [e["why"] for e in flags.history(store_db, GPU)] == ["three", "one"]
    assert [e["why"] for e in flags.history(store_db, limit=1)] == ["three"]
