"""The services behind the admin pages: the one-click boot, staff status, instance search
and detail, the job board's retry and cancel, and audit trails."""

from __future__ import annotations

import pytest

from gpucloud.errors import Conflict, GpucloudError, NotFound
from gpucloud.services import account_admin, accounts, audit_trail, flags, hosts, instance_admin, job_board
from gpucloud.services.gating import flags_for
from gpucloud.services.instances import NewInstance, create_instance
from gpucloud.store import audit
from gpucloud.store import jobs as store_jobs
from tests.factories import two_node_host

PLAN = "g1-gpu-rtx6000-2"


@pytest.fixture
def fleet(store_db, settings):
    hosts.register_host(store_db, settings, name="gpu-1", region="us-east",
                        topology=two_node_host(cores_per_node=16, memory_gib=256),
                        driver="sim", profile="test")
    flags.set_state(store_db, "gpu-instances", "staff", why="tests", actor="tests")
    flags_for(store_db).refresh()
    return accounts.create_account(store_db, "carol@example.com", username="carol")


def _audited(db, action):
    with db.read() as s:
        return [e for e in audit.recent(s) if e.action == action]


def test_boot_places_claims_and_queues_like_the_api_and_bypasses_flags_audited(store_db, settings, fleet):
    booted = instance_admin.boot_for_account(store_db, settings, fleet.email, plan=PLAN, region="us-east",
                                             image="linode/ubuntu24.04", label=None, actor="admin:ops")

    assert booted.flags_bypassed  # carol is no staff and gpu-instances is in the staff state
    assert booted.root_password and len(booted.root_password) >= 16
    page = instance_admin.detail(store_db, booted.instance_id)
    assert page["status"] == "provisioning" and page["host"] == "gpu-1"
    assert len(page["gpus"]) == 2
    assert {g["numa_node"] for g in page["gpus"]} == {m["node"] for m in page["memory"]}  # NUMA-local
    assert sum(m["cpu_count"] for m in page["memory"]) == 16
    assert [(j["kind"], j["state"]) for j in page["jobs"]] == [("create", "queued")]
    assert [e["action"] for e in page["events"]] == ["linode_create"]
    assert page["created_by"] == "admin:ops"
    [entry] = _audited(store_db, "instance.create")
    assert entry.actor == "admin:ops" and entry.after["flags_bypassed"] is True
    assert entry.target_id == str(booted.instance_id)
    progress = instance_admin.progress(store_db, booted.instance_id)
    assert (progress["status"], progress["done"], progress["job_state"]) == ("provisioning", False, "queued")


def test_a_boot_that_cannot_be_placed_changes_nothing(store_db, settings, fleet):
    with pytest.raises(GpucloudError, match="No capacity"):
        instance_admin.boot_for_account(store_db, settings, fleet.id, plan="g1-gpu-rtx6000-4", region="ap-west",
                                        image=None, label=None, actor="admin:ops")
    with pytest.raises(NotFound):
        instance_admin.boot_for_account(store_db, settings, "nobody@example.com", plan=PLAN, region="us-east",
                                        image=None, label=None, actor="admin:ops")
    assert instance_admin.search(store_db) == []
    assert _audited(store_db, "instance.create") == []


def test_search_finds_instances_by_id_label_host_and_gpu_address(store_db, settings, fleet):
    first = create_instance(store_db, settings, fleet.id, "carol", NewInstance(type=PLAN, region="us-east",
                                                                                label="alpha"), bypass_flags=True)
    second = create_instance(store_db, settings, fleet.id, "carol", NewInstance(type=PLAN, region="us-east",
                                                                                 label="beta"), bypass_flags=True)
    address = instance_admin.detail(store_db, second.id)["gpus"][0]["address"]

    def ids(query):
        return [i["id"] for i in instance_admin.search(store_db, query)]

    assert ids("") == [second.id, first.id]
    assert ids(str(first.id)) == [first.id]
    assert ids("ALPHA") == [first.id]
    assert ids("gpu-1") == [second.id, first.id]
    assert ids(address) == [second.id]
    assert ids("no-such-thing") == []
    mine = instance_admin.of_account(store_db, fleet.id)
    assert [i["label"] for i in mine] == ["alpha", "beta"] and all(len(i["gpus"]) == 2 for i in mine)


def test_staff_status_changes_are_audited_and_need_a_reason(store_db, settings, fleet):
    with pytest.raises(GpucloudError, match="say why"):
        account_admin.set_staff(store_db, fleet.id, True, why="  ", actor="admin:ops")
    assert not account_admin.overview(store_db, fleet.id)["is_staff"]

    assert account_admin.set_staff(store_db, fleet.email, True, why="joined the team", actor="admin:ops")
    assert not account_admin.set_staff(store_db, fleet.id, True, why="again", actor="admin:ops")
    page = account_admin.overview(store_db, fleet.id)
    assert page["is_staff"]
    assert {f["key"]: f["enabled"] for f in page["flags"]}["gpu-instances"]  # staff state, now staff
    [entry] = audit_trail.of_account(store_db, fleet.id, [])
    assert (entry["action"], entry["before"], entry["after"], entry["why"]) == (
        "account.staff", {"is_staff": False}, {"is_staff": True}, "joined the team")
    with pytest.raises(NotFound):
        account_admin.set_staff(store_db, 999, True, why="x", actor="admin:ops")


def test_job_board_cancel_and_retry(store_db, settings, fleet):
    instance = create_instance(store_db, settings, fleet.id, "carol", NewInstance(type=PLAN, region="us-east"),
                               bypass_flags=True)
    [job] = instance_admin.detail(store_db, instance.id)["jobs"]
    board = job_board.board(store_db)
    assert [j["id"] for j in board["queued"]] == [job["id"]] and board["counts"] == {"queued": 1}

    with pytest.raises(Conflict, match="only a failed or cancelled job"):
        job_board.retry_job(store_db, job["id"], actor="admin:ops")
    job_board.cancel_job(store_db, job["id"], actor="admin:ops", why="operator test")
    assert job_board.board(store_db)["cancelled"][0]["last_error"] == "cancelled by admin:ops: operator test"
    job_board.retry_job(store_db, job["id"], actor="admin:ops")
    assert job_board.board(store_db)["counts"] == {"queued": 1}
    with pytest.raises(NotFound):
        job_board.cancel_job(store_db, 12345, actor="admin:ops")
    assert [(e.actor, e.why) for e in _audited(store_db, "job.cancel")] == [("admin:ops", "operator test")]
    assert len(_audited(store_db, "job.retry")) == 1


def test_periodic_jobs_are_summed_not_listed(store_db, settings, fleet):

    with store_db.write() as s:
        store_jobs.enqueue(s, kind="host_sweep", payload={"shard": 0}, max_attempts=1)
    board = job_board.board(store_db, periodic=("host_sweep",))
    assert board["queued"] == []
    assert [(p["kind"], p["queued"]) for p in board["periodic"]] == [("host_sweep", 1)]


def test_host_audit_trail_has_the_host_and_its_gpus(store_db, settings, fleet):
    hosts.set_host_status(store_db, "gpu-1", "draining", why="fans", actor="admin:ops")
    hosts.set_gpu_status(store_db, "gpu-1", "0000:3b:00.0", "faulty", why="xid 79", actor="admin:ops")
    entries = audit_trail.of_host(store_db, 1, "gpu-1")
    assert [(e["action"], e["why"]) for e in entries[:2]] == [("gpu.status", "xid 79"), ("host.status", "fans")]
