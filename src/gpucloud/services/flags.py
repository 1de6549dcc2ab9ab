"""Operating feature flags: list them, change their state, grant or refuse them per account,
retire the ones the code no longer knows, and read their history.

Each change is one transaction that also writes an audit entry (who, before, after, why)
and bumps the `flags` version counter, so every process's `FlagCache` reloads within its
poll interval. A change that fails leaves nothing behind. Only flags the code knows
(`gpucloud.domain.flags.known_flags`) can be set; only flags it does not know can be retired.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from gpucloud.catalog import load_catalog
from gpucloud.clock import utcnow
from gpucloud.domain import flags as rules
from gpucloud.errors import Conflict, GpucloudError, NotFound
from gpucloud.store import audit
from gpucloud.store import flags as q
from gpucloud.store.accounts import account_by_ref, search_accounts
from gpucloud.store.db import Database
from gpucloud.store.tables import Account, FeatureFlag, FlagOverride


class UnknownFlag(GpucloudError):
    def __init__(self, key: str):
        super().__init__(f"unknown flag {key!r}; known flags: {', '.join(known())}", field="key")


def known() -> dict[str, rules.FlagSpec]:
    """The flags the code knows, from the shipped catalog (one per GPU region, plus the global one)."""
    return rules.known_flags(load_catalog())


@dataclass(frozen=True)
class OverrideView:
    account_id: int
    account_email: str
    allow: bool
    expires_at: datetime | None
    created_at: datetime
    active: bool  # False once expires_at has passed; it no longer counts


@dataclass(frozen=True)
class FlagView:
    key: str
    description: str
    state: str
    percent: int
    known: bool  # named by the code; an unknown one is waiting to be retired
    stored: bool  # has a row; a known flag without one is off
    updated_at: datetime | None
    overrides: tuple[OverrideView, ...]

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Change:
    """What one operation did to one flag; `before == after` when it had nothing to do."""

    key: str
    before: dict | None
    after: dict | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


# --- reading --------------------------------------------------------------------------------


def list_flags(db: Database) -> list[FlagView]:
    """Every known flag (stored or not), then stored flags the code no longer knows."""
    now, specs = utcnow(), known()
    with db.read() as s:
        rows = {row.key: row for row in q.all_flags(s)}
        overrides: dict[str, list[OverrideView]] = {}
        for o, email in q.overrides_with_emails(s):
            overrides.setdefault(o.flag_key, []).append(_override_view(o, email, now))
    keys = list(specs) + sorted(k for k in rows if k not in specs)
    return [_flag_view(key, specs.get(key), rows.get(key), overrides.get(key, [])) for key in keys]


def get_flag(db: Database, key: str) -> FlagView:
    for view in list_flags(db):
        if view.key == key:
            return view
    raise UnknownFlag(key)


def rollout(db: Database, key: str, limit: int = 10_000) -> list[dict]:
    """Every account (up to `limit`) with whether the flag is on for it now and why: who a
    percent rollout holds (its place 0..99 below the percentage), staff, overrides."""
    _known(key)
    now = utcnow()
    with db.read() as s:
        row = q.flag(s, key)
        flag = rules.Flag(key, row.state, row.percent) if row else rules.Flag(key)
        overrides = [rules.Override(a, allow, until) for k, a, allow, until in q.override_tuples(s) if k == key]
        out = []
        for account in search_accounts(s, "", limit):
            on, why = rules.decide(flag, account.id, account.is_staff, overrides, now)
            out.append({"id": account.id, "email": account.email, "is_staff": account.is_staff, "on": on,
                        "why": why})
    return sorted(out, key=lambda a: a["id"])


def unknown_flags_in_db(db: Database) -> list[str]:
    """Keys stored in the database that the code does not know: candidates for `retire`."""
    specs = known()
    with db.read() as s:
        return [row.key for row in q.all_flags(s) if row.key not in specs]


def history(db: Database, key: str | None = None, limit: int = 100) -> list[dict]:
    """The audit trail of flag changes, newest first."""
    with db.read() as s:
        entries = audit.recent(s, target_type="flag", target_id=key, limit=limit)
        return [{"id": e.id, "at": e.at, "actor": e.actor, "action": e.action, "key": e.target_id,
                 "before": e.before, "after": e.after, "why": e.why} for e in entries]


# --- changing -------------------------------------------------------------------------------


def set_state(db: Database, key: str, state: str, percent: int | None = None, *, why: str, actor: str) -> Change:
    """Move a known flag to `off`, `staff`, `percent` (with `percent` 0..100) or `on`."""
    spec, why, actor = _known(key), _required("why", why), _required("actor", actor)
    state, percent = _checked(state, percent)
    after = {"state": state, "percent": percent}
    with db.write() as s:
        row = q.flag(s, key, lock=True)
        before = _state(row) if row else {"state": "off", "percent": 0}  # a known flag never stored is off
        if before == after:
            return Change(key, before, before)
        if row is None:
            q.insert_flag_if_missing(s, key, spec.description)
            row = q.flag(s, key, lock=True)
            if row is None:
                raise RuntimeError(f"flag {key} is missing right after it was inserted")
            before = _state(row)  # a racing first change may have created it first
        row.state, row.percent, row.description, row.updated_at = state, percent, spec.description, utcnow()
        _audit_and_bump(s, "flag.set", key, before, after, why, actor)
        return Change(key, before, after)


def ensure_flag_state(db: Database, key: str, state: str, percent: int | None = None, *, why: str,
                      actor: str) -> bool:
    """Create a known flag in `state` if it does not exist yet; True when created. An existing
    flag is left alone, so re-running a seed never undoes an operator's change."""
    spec, why, actor = _known(key), _required("why", why), _required("actor", actor)
    state, percent = _checked(state, percent)
    with db.write() as s:
        if not q.insert_flag_if_missing(s, key, spec.description, state, percent):
            return False
        _audit_and_bump(s, "flag.create", key, None, {"state": state, "percent": percent}, why, actor)
        return True


def allow(db: Database, key: str, account: str | int, *, until: datetime | None = None, why: str,
          actor: str) -> Change:
    """The flag is on for this account whatever its state, until `until` (UTC) if given."""
    return _set_override(db, key, account, True, until, why, actor)


def deny(db: Database, key: str, account: str | int, *, until: datetime | None = None, why: str,
         actor: str) -> Change:
    """The flag is off for this account whatever its state (staff included), until `until` if given."""
    return _set_override(db, key, account, False, until, why, actor)


def clear(db: Database, key: str, account: str | int, *, why: str, actor: str) -> Change:
    """Remove the account's override: the flag's state decides again."""
    _known(key)
    why, actor = _required("why", why), _required("actor", actor)
    with db.write() as s:
        account_id = _account(s, account).id
        row = q.flag(s, key, lock=True)
        found = q.override(s, key, account_id) if row else None
        if found is None:
            raise NotFound(f"account {account} has no override on {key}")
        before = _override_state(found)
        s.delete(found)
        _audit_and_bump(s, "flag.clear", key, before, None, why, actor)
        return Change(key, before, None)


def retire(db: Database, key: str, *, why: str, actor: str) -> Change:
    """Delete a flag the code no longer knows, with its overrides. Known flags are refused:
    remove their uses and their entry in `domain/flags.py` first."""
    if key in known():
        raise Conflict(f"{key} is still known to the code (gpucloud.domain.flags); "
                       f"remove its uses there first, then retire it")
    why, actor = _required("why", why), _required("actor", actor)
    with db.write() as s:
        row = q.flag(s, key, lock=True)
        if row is None:
            raise NotFound(f"no flag {key!r} in the database")
        before = {**_state(row), "overrides": [_override_state(o) for o in q.overrides(s, key)]}
        q.delete_flag(s, key)
        _audit_and_bump(s, "flag.retire", key, before, None, why, actor)
        return Change(key, before, None)


# --- helpers --------------------------------------------------------------------------------


def _set_override(db: Database, key: str, account: str | int, allow_: bool, until: datetime | None,
                  why: str, actor: str) -> Change:
    _known(key)
    why, actor = _required("why", why), _required("actor", actor)
    until = _future_utc(until)
    with db.write() as s:
        return set_override_in(s, key, _account(s, account).id, allow_, until, why=why, actor=actor)


def set_override_in(s: Session, key: str, account_id: int, allow_: bool, until: datetime | None, *, why: str,
                    actor: str) -> Change:
    """An account's override (allow or deny, until `until`), audited, in the caller's
    transaction (a GPU trial's approval writes it with the trial's promotion)."""
    spec = _known(key)
    q.insert_flag_if_missing(s, key, spec.description)  # overrides hang off the flag's row
    q.flag(s, key, lock=True)
    found = q.override(s, key, account_id)
    before = _override_state(found) if found else None
    after = {"account_id": account_id, "allow": allow_, "expires_at": _iso(until)}
    if before == after:
        return Change(key, before, before)
    if found is None:
        s.add(FlagOverride(flag_key=key, account_id=account_id, allow=allow_, expires_at=until))
    else:
        found.allow, found.expires_at, found.created_at = allow_, until, utcnow()
    _audit_and_bump(s, "flag.allow" if allow_ else "flag.deny", key, before, after, why, actor)
    return Change(key, before, after)


def _audit_and_bump(s, action: str, key: str, before: dict | None, after: dict | None, why: str,
                    actor: str) -> None:
    audit.record(s, actor=actor, action=action, target_type="flag", target_id=key, before=before, after=after,
                 why=why)
    q.bump_version(s)


def _known(key: str) -> rules.FlagSpec:
    spec = known().get(key)
    if spec is None:
        raise UnknownFlag(key)
    return spec


def _required(name: str, value: str | None) -> str:
    text = (value or "").strip()
    if not text:
        reason = "a reason is required: --why TEXT (kept in the audit log)" if name == "why" else f"{name} is required"
        raise GpucloudError(reason, field=name)
    return text


def _checked(state: str, percent: int | None) -> tuple[str, int]:
    try:
        return rules.check_state(state, percent)
    except rules.FlagError as exc:
        raise GpucloudError(str(exc), field="percent" if "percent" in str(exc) else "state") from None


def _future_utc(until: datetime | None) -> datetime | None:
    if until is None:
        return None
    if until.tzinfo is not None:
        until = until.astimezone(UTC).replace(tzinfo=None)
    if until <= utcnow():
        raise GpucloudError(f"--until must be in the future (UTC), not {until.isoformat()}", field="until")
    return until


def _account(s, ref: str | int) -> Account:
    account = account_by_ref(s, ref)
    if account is None:
        raise NotFound(f"no account {ref}", field="account")
    return account


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _state(row: FeatureFlag) -> dict:
    return {"state": row.state, "percent": row.percent}


def _override_state(o: FlagOverride) -> dict:
    return {"account_id": o.account_id, "allow": o.allow, "expires_at": _iso(o.expires_at)}


def _override_view(o: FlagOverride, email: str, now: datetime) -> OverrideView:
    rule = rules.Override(o.account_id, o.allow, o.expires_at)
    return OverrideView(o.account_id, email, o.allow, o.expires_at, o.created_at, rule.active(now))


def _flag_view(key: str, spec: rules.FlagSpec | None, row: FeatureFlag | None,
               overrides: list[OverrideView]) -> FlagView:
    return FlagView(key=key, description=spec.description if spec else (row.description if row else ""),
                    state=row.state if row else "off", percent=row.percent if row else 0,
                    known=spec is not None, stored=row is not None,
                    updated_at=row.updated_at if row else None, overrides=tuple(overrides))
