"""The GPU trial end to end below the API, on both databases, with a real worker on a
simulated host: request, decline, approve (flag override + promotion in one transaction),
the end by policy (shut down with a reason, GPUs released, disks kept, then deleted), the
boot refusal that says why, and an account that became paying."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from gpucloud.clock import utcnow
from gpucloud.domain.flags import GPU_INSTANCES
from gpucloud.errors import Conflict, GpucloudError
from gpucloud.hypervisor.profile import load_profile
from gpucloud.jobs import host_jobs, instance_jobs
from gpucloud.jobs.worker import start_workers
from gpucloud.services import accounts, billing, flags, gating, hosts, instances, invariants, trials
from gpucloud.store import claims
from gpucloud.store import flags as flag_store
from gpucloud.store.tables import (
    AccountPromotion,
    AuditEntry,
    Event,
    FlagOverride,
    GpuClaim,
    GpuTrial,
    Instance,
    Job,
)
from tests.conftest import make_settings

HANDLERS = {**instance_jobs.HANDLERS, **host_jobs.HANDLERS}
GPU1 = "g1-gpu-rtx6000-1"


@pytest.fixture
def env(store_db, tmp_path):
    settings = make_settings(tmp_path, store_db.url, worker_poll_seconds=0.02, sim_boot_seconds=0.05,
                             job_backoff_seconds=0.05, job_backoff_max_seconds=0.1)
    hosts.register_host(store_db, settings, name="sim-a", region="us-east", topology=load_profile("rtx6000-2s4g"),
                        driver="sim", profile="rtx6000-2s4g")
    flags.set_state(store_db, GPU_INSTANCES, "off", why="GPU plans dark", actor="test")
    worker = start_workers(store_db, settings, HANDLERS, concurrency=2, periodic=[])
    yield store_db, settings
    worker.stop(timeout=5)


def settle(db, instance_id, status, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.read() as s:
            found = s.get(Instance, instance_id)
            busy = s.scalar(select(func.count()).select_from(Job).where(
                Job.instance_id == instance_id, Job.state.in_(("queued", "running"))))
        if busy == 0 and (found.status if found else None) == status:
            return found
        time.sleep(0.03)
    raise AssertionError(f"instance {instance_id} is {found.status if found else 'gone'}, not {status}")


def approved(db, settings, email):
    account = accounts.create_account(db, email)
    trial = trials.request(db, settings, account.id, "fine-tuning a 7B model")
    trials.approve(db, settings, trial.id, actor="op", why="looks legit")
    gating.flags_for(db).refresh()
    return account, trial


def gpu_instance(db, settings, account):
    new = instances.NewInstance(type=GPU1, region="us-east", image="linode/debian12", root_pass="aComplex@Password123")
    vm = instances.create_instance(db, settings, account.id, account.username, new)  # through the flags
    return settle(db, vm.id, "running")


def end_now(db, trial_id):
    """Move the trial's end (and its override's expiry) to a moment ago: a controllable clock."""
    past = utcnow() - timedelta(minutes=1)
    with db.write() as s:
        trial = s.get(GpuTrial, trial_id)
        s.execute(update(GpuTrial).where(GpuTrial.id == trial_id).values(ends_at=past))
        s.execute(update(FlagOverride).where(FlagOverride.account_id == trial.account_id).values(expires_at=past))
        s.execute(update(AccountPromotion).where(AccountPromotion.id == trial.promotion_id).values(expires_at=past))
        flag_store.bump_version(s)  # as every flag change does: caches reload
    gating.flags_for(db).refresh()


def test_requests_are_decided_once_and_audited(env):
    db, settings = env
    account = accounts.create_account(db, "asker@example.com")
    with pytest.raises(GpucloudError) as err:
        trials.request(db, settings, account.id, "  ")
    assert err.value.field == "reason"
    first = trials.request(db, settings, account.id, "benchmarks")
    with pytest.raises(GpucloudError, match="already has a GPU trial"):
        trials.request(db, settings, account.id, "again")
    with pytest.raises(GpucloudError, match="reason is required"):
        trials.decline(db, first.id, actor="op", why="")
    trials.decline(db, first.id, actor="op", why="please use a company e-mail")
    assert trials.latest(db, account.id).decision_reason == "please use a company e-mail"
    with pytest.raises(Conflict):
        trials.approve(db, settings, first.id, actor="op", why="changed my mind")
    second = trials.request(db, settings, account.id, "benchmarks, from work")  # declined: may ask again
    done = trials.approve(db, settings, second.id, actor="op", why="ok")
    assert done.status == "active" and done.ends_at - done.starts_at == timedelta(days=7)
    with db.read() as s:
        override = s.get(FlagOverride, (GPU_INSTANCES, account.id))
        promo = s.get(AccountPromotion, done.promotion_id)
        actions = [e.action for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert override.allow and override.expires_at == done.ends_at
    assert (promo.covers, promo.starts_at, promo.expires_at, promo.credit_cents) == (
        ["gpu"], done.starts_at, done.ends_at, 250000)
    assert actions[-3:] == ["billing.trial_decline", "flag.allow", "billing.trial_approve"]
    assert [r.trial.id for r in trials.listing(db, "active")] == [second.id]


def test_auto_approve_policy(env):
    db, settings = env
    account = accounts.create_account(db, "eager@example.com")
    trial = trials.request(db, replace(settings, trial_auto_approve=True), account.id, "a demo")
    assert trial.status == "active" and trial.decided_by == "policy:trial_auto_approve"


def test_trial_end_shuts_down_releases_gpus_keeps_disks_then_deletes(env):
    db, settings = env
    account, trial = approved(db, settings, "trier@example.com")
    vm = gpu_instance(db, settings, account)
    f = billing.figures(db, account.id)
    assert f.uninvoiced == 0 and f.promotions[0].promotion.summary == "GPU trial (7 days)"  # GPU hours on credit
    end_now(db, trial.id)
    report = trials.sweep(db, settings)
    assert report.ended == [trial.id] and report.stopped == [vm.id]
    with db.read() as s:
        (event,) = s.scalars(select(Event).where(Event.entity_id == vm.id, Event.action == "linode_shutdown"))
    assert event.message.startswith("Shut down: Your GPU trial ended on ") and event.username == "gpucloud"
    settle(db, vm.id, "offline")
    with db.read() as s:  # the worker's steps did not replace the reason
        event = s.get(Event, event.id)
        assert event is not None and (event.status, event.shown_message[:35]) == ("finished", "Shut down: Your GPU trial ended on ")
    assert trials.sweep(db, settings).parked == [vm.id]
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(GpuClaim)) == 0  # the GPU is for sale again
    assert [v for v in invariants.check(db).violations if "claims" in v.kind] == []  # parked is no violation
    with pytest.raises(GpucloudError) as err:
        instances.boot_instance(db, account.id, vm.id, account.username)
    assert err.value.reason.startswith("Your GPU trial ended on ") and "kept until" in err.value.reason
    assert "not available to this account" not in err.value.reason
    assert trials.sweep(db, settings) == trials.SweepReport()  # nothing left to do until the keep date
    with db.write() as s:
        s.execute(update(GpuTrial).values(disks_until=utcnow() - timedelta(seconds=1)))
    assert trials.sweep(db, settings).deleted == [vm.id]
    settle(db, vm.id, None)


def test_an_account_that_became_paying_keeps_its_instances(env):
    db, settings = env
    account, trial = approved(db, settings, "payer@example.com")
    vm = gpu_instance(db, settings, account)
    end_now(db, trial.id)
    flags.allow(db, GPU_INSTANCES, account.id, why="converted to paying", actor="op")
    gating.flags_for(db).refresh()
    report = trials.sweep(db, settings)
    assert report.ended == [trial.id] and report.stopped == []
    assert settle(db, vm.id, "running")


def test_a_parked_instance_boots_again_once_paying(env):
    db, settings = env
    account, trial = approved(db, settings, "later@example.com")
    vm = gpu_instance(db, settings, account)
    end_now(db, trial.id)
    trials.sweep(db, settings)
    settle(db, vm.id, "offline")
    trials.sweep(db, settings)
    with db.read() as s:
        assert not claims.holds_claims(s, vm.id)
    billing.record_payment(db, account.id, "500", actor="op", note="wire")
    flags.allow(db, GPU_INSTANCES, account.id, why="paying", actor="op")
    gating.flags_for(db).refresh()
    instances.boot_instance(db, account.id, vm.id, account.username)
    settle(db, vm.id, "running")
    with db.read() as s:
        assert claims.gpus_held(s, vm.id) == 1
    assert trials.sweep(db, settings).stopped == []  # paying now: the trial lets go
    with db.read() as s:
        assert s.get(GpuTrial, trial.id).disks_until is None
