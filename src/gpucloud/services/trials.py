"""The one-week GPU trial as a product: customers request it, operators approve or decline
(audited) or let a policy approve, approval opens GPU plans and covers GPU usage for the
trial in one transaction, and the billing sweep ends it by policy.

End of a trial, policy `shutdown` (the default): the account's GPU instances are shut down
with an event saying why, their GPUs are released once they are off (`services.parking`), and
they (with their disks) are kept `trial_disk_keep_days`, then deleted. Policy `keep`: they
run on, billed. An account that became paying (a payment recorded, or GPU plans open to it
without the trial) keeps its instances running.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from gpucloud.catalog import load_catalog
from gpucloud.clock import utcnow
from gpucloud.config import Settings
from gpucloud.domain import billing as money
from gpucloud.domain import lifecycle
from gpucloud.domain import trials as rules
from gpucloud.domain.flags import GPU_INSTANCES
from gpucloud.errors import Conflict, GpucloudError, NotFound
from gpucloud.services import flags, gating, instances, parking, promotions
from gpucloud.store import audit
from gpucloud.store import billing as billing_q
from gpucloud.store import claims as claims_q
from gpucloud.store import instances as instance_q
from gpucloud.store import trials as q
from gpucloud.store.db import Database
from gpucloud.store.tables import Account, GpuTrial, Instance

SYSTEM = "gpucloud"  # the username on events the product itself starts


def latest(db: Database, account_id: int) -> GpuTrial | None:
    with db.read() as s:
        return q.latest(s, account_id)


def request(db: Database, settings: Settings, account_id: int, reason: str, now: datetime | None = None) -> GpuTrial:
    """The customer asks for the trial (`POST /v4/account/gpu-trial`). Refused while their
    latest request is pending, active or ended; a declined one may be asked again. With
    `trial_auto_approve`, approved at once."""
    moment = now or utcnow()
    text = (reason or "").strip()
    if not text:
        raise GpucloudError("Tell us what you would like to try GPUs for", field="reason")
    with db.write() as s:
        account = s.get(Account, account_id, with_for_update=True)  # one request at a time per account
        if account is None:
            raise NotFound()
        previous = q.latest(s, account_id)
        if previous is not None and previous.status in rules.OPEN:
            raise GpucloudError(f"This account already has a GPU trial ({previous.status})", field="reason")
        trial = GpuTrial(account_id=account_id, status=rules.PENDING, reason=text, requested_at=moment)
        s.add(trial)
        s.flush()
        if settings.trial_auto_approve:
            _approve_in(s, settings, trial, actor="policy:trial_auto_approve", why="auto-approve policy", now=moment)
        return trial


def approve(db: Database, settings: Settings, trial_id: int, *, actor: str, why: str,
            now: datetime | None = None) -> GpuTrial:
    """Approve a pending request: the gpu-instances override until the end and the trial's
    promotion, in one transaction, audited."""
    why = _required_why(why)
    with db.write() as s:
        trial = _pending(s, trial_id)
        _approve_in(s, settings, trial, actor=actor, why=why, now=now or utcnow())
        return trial


def decline(db: Database, trial_id: int, *, actor: str, why: str, now: datetime | None = None) -> GpuTrial:
    """Decline a pending request with a reason the customer reads; audited."""
    why = _required_why(why)
    with db.write() as s:
        trial = _pending(s, trial_id)
        trial.status, trial.decided_at, trial.decided_by, trial.decision_reason = (
            rules.DECLINED, now or utcnow(), actor, why)
        audit.record(s, actor=actor, action="billing.trial_decline", target_type="account",
                     target_id=trial.account_id, before={"trial": trial.id, "status": rules.PENDING},
                     after={"trial": trial.id, "status": rules.DECLINED}, why=why)
        return trial


@dataclass(frozen=True)
class TrialRow:
    trial: GpuTrial
    email: str
    gpu_instances: int  # GPU instances the account has now
    gpus_held: int  # GPUs they hold


def listing(db: Database, status: str | None = None) -> list[TrialRow]:
    """Operators' list (CLI and the admin Trials page), newest first."""
    if status is not None and status not in (rules.PENDING, rules.ACTIVE, rules.DECLINED, rules.ENDED):
        raise GpucloudError(f"status must be pending, active, declined or ended, not {status!r}", field="status")
    with db.read() as s:
        rows = []
        for trial in q.listed(s, status):
            account = s.get(Account, trial.account_id)
            gpu = [i for i in instance_q.of_account(s, trial.account_id) if _is_gpu(i)]
            held = sum(claims_q.gpus_held(s, i.id) for i in gpu)
            rows.append(TrialRow(trial, account.email if account else "?", len(gpu), held))
        return rows


def notices(db: Database, account_id: int, now: datetime | None = None) -> list[rules.Notice]:
    trial = latest(db, account_id)
    if trial is None:
        return []
    return rules.notices(trial.status, starts=trial.starts_at, ends=trial.ends_at, disks_until=trial.disks_until,
                         decision=trial.decision_reason, now=now or utcnow())


# --- the sweep ------------------------------------------------------------------------------


@dataclass
class SweepReport:
    ended: list[int] = field(default_factory=list)  # trial ids ended now
    stopped: list[int] = field(default_factory=list)  # instance ids shut down
    parked: list[int] = field(default_factory=list)  # instance ids whose GPUs were released
    deleted: list[int] = field(default_factory=list)  # instance ids deleted after the keep period


def sweep(db: Database, settings: Settings, now: datetime | None = None) -> SweepReport:
    """End the trials that are due and carry out the end-of-trial policy; idempotent (each
    pass does what is left: instances busy last time, GPUs of instances now off, disks past
    their keep date)."""
    moment = now or utcnow()
    report = SweepReport()
    with db.read() as s:
        due = [t.id for t in q.due_to_end(s, moment)]
    for trial_id in due:
        with db.write() as s:
            trial = s.get(GpuTrial, trial_id, with_for_update=True)
            if trial is None or trial.status != rules.ACTIVE:
                continue
            trial.status, trial.ended_at = rules.ENDED, moment
            if settings.trial_end_policy == "shutdown" and not _paying(db, s, trial.account_id):
                trial.disks_until = moment + timedelta(days=settings.trial_disk_keep_days)
            audit.record(s, actor="policy:trial_end", action="billing.trial_end", target_type="account",
                         target_id=trial.account_id, after={"trial": trial.id, "policy": settings.trial_end_policy,
                                                            "disks_until": _iso(trial.disks_until)})
            report.ended.append(trial.id)
    with db.read() as s:
        stopping = [(t.id, t.account_id) for t in q.ended(s) if t.disks_until is not None]
    for trial_id, account_id in stopping:
        _carry_out(db, trial_id, account_id, moment, report)
    return report


def _carry_out(db: Database, trial_id: int, account_id: int, now: datetime, report: SweepReport) -> None:
    with db.write() as s:
        trial = s.get(GpuTrial, trial_id)
        if trial is None or trial.ends_at is None or trial.disks_until is None:
            return
        if _paying(db, s, account_id):
            trial.disks_until = None  # a paying customer keeps everything
            audit.record(s, actor="policy:trial_end", action="billing.trial_converted", target_type="account",
                         target_id=account_id, after={"trial": trial.id})
            return
        reason = rules.ended_reason(trial.ends_at, trial.disks_until)
        for instance in instance_q.of_account(s, account_id):
            if not _is_gpu(instance) or instance.status == lifecycle.DELETING:
                continue
            if now >= trial.disks_until:
                if instances.delete_in(s, instance, SYSTEM):
                    report.deleted.append(instance.id)
            elif instance.status == lifecycle.OFFLINE:
                if parking.park(s, instance):
                    report.parked.append(instance.id)
            elif instances.stop_in(s, instance, SYSTEM, f"Shut down: {reason}"):
                report.stopped.append(instance.id)


def _paying(db: Database, s: Session, account_id: int) -> bool:
    """A payment recorded, or GPU plans open to the account without the trial."""
    if billing_q.paid_cents(s, account_id) > 0:
        return True
    account = s.get(Account, account_id)
    return account is not None and gating.flags_for(db).gpu_types_visible(account)


def _approve_in(s: Session, settings: Settings, trial: GpuTrial, *, actor: str, why: str, now: datetime) -> None:
    ends = now + timedelta(days=settings.trial_days)
    flags.set_override_in(s, GPU_INSTANCES, trial.account_id, True, ends, why=f"GPU trial {trial.id}: {why}",
                          actor=actor)
    promo = promotions.grant(s, trial.account_id, summary=f"GPU trial ({settings.trial_days} days)",
                             credit_cents=money.to_cents(money.Decimal(str(settings.trial_credit_usd))),
                             covers=["gpu"], starts=now, expires=ends)
    trial.status, trial.decided_at, trial.decided_by, trial.decision_reason = rules.ACTIVE, now, actor, why
    trial.starts_at, trial.ends_at, trial.promotion_id = now, ends, promo.id
    audit.record(s, actor=actor, action="billing.trial_approve", target_type="account", target_id=trial.account_id,
                 before={"trial": trial.id, "status": rules.PENDING},
                 after={"trial": trial.id, "status": rules.ACTIVE, "ends": ends.isoformat(), "promotion": promo.id},
                 why=why)


def _pending(s: Session, trial_id: int) -> GpuTrial:
    trial = q.by_id(s, trial_id, lock=True)
    if trial is None:
        raise NotFound(f"no GPU trial {trial_id}")
    if trial.status != rules.PENDING:
        raise Conflict(f"GPU trial {trial_id} is {trial.status}, not pending")
    return trial


def _required_why(why: str) -> str:
    text = (why or "").strip()
    if not text:
        raise GpucloudError("a reason is required: --why TEXT (kept in the audit log)", field="why")
    return text


def _is_gpu(instance: Instance) -> bool:
    plan = load_catalog().plan(instance.type_id)
    return plan is not None and plan.is_gpu


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
