"""What a customer does to a running guest, through linode_api4 against a live server whose
simulated hosts take (short) real time for each step: every transitional status is seen by a
polling client. A server of its own: the step times differ from the shared server's."""

from __future__ import annotations

import time

import pytest
from linode_api4 import ApiError, Instance, LinodeClient

from gpucloud.hypervisor import sim
from gpucloud.store.tables import Host, InstanceSample
from gpucloud.store.tables import Instance as Instance_
from tests.api.conftest import _migrated, _start
from tests.conftest import make_settings

STEP_S = 1.0  # each simulated step; the poller looks every POLL_S
POLL_S = 0.3
PLAN, BIGGER = "g6-nanode-1", "g6-standard-1"
IMAGE = "linode/debian12"
ROOT_PASS = "a-Long-passw0rd-4-tests"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb1Fq3QzCiX0i0qUO0T4HFDWNZLkbWW9PbU3MBzNbmD me@laptop"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("guest-ops")
    settings = make_settings(data_dir, f"sqlite:///{data_dir / 'gpucloud.sqlite'}", worker_poll_seconds=0.05,
                             sim_provision_seconds=STEP_S, sim_boot_seconds=STEP_S, sim_shutdown_seconds=STEP_S,
                             sim_resize_seconds=STEP_S, sim_rebuild_seconds=STEP_S,
                             host_check_seconds=0.2, stats_sample_seconds=0.5)
    db = _migrated(settings.resolved_database_url)
    live = _start(settings, db)
    yield live
    live.stop()
    db.dispose()


@pytest.fixture(scope="module")
def client(server) -> LinodeClient:
    return server.client(server.customer().token)


def statuses_until(inst: Instance, settled: str, timeout: float = 30) -> list[str]:
    """The statuses a client polling every POLL_S sees, in order without repeats, until `settled`."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        inst.invalidate()
        if not seen or seen[-1] != inst.status:
            seen.append(inst.status)
        if inst.status == settled and len(seen) > 1:
            return seen
        time.sleep(POLL_S)
    raise AssertionError(f"never settled in {settled}: saw {seen}")


def test_a_polling_client_sees_every_transitional_status(client):
    inst = client.linode.instance_create(PLAN, "us-east", image=IMAGE, label="poll-me", root_pass=ROOT_PASS)
    assert statuses_until(inst, "running") == ["provisioning", "booting", "running"]

    inst.reboot()
    assert statuses_until(inst, "running") == ["rebooting", "running"]

    inst.resize(BIGGER)
    seen = statuses_until(inst, "running")
    assert seen == ["resizing", "booting", "running"] and inst.type.id == BIGGER

    inst.shutdown()
    assert statuses_until(inst, "offline") == ["shutting_down", "offline"]
    inst.boot()
    assert statuses_until(inst, "running") == ["booting", "running"]


def domain_on_host(server, instance_id: int) -> dict:
    """What the instance's simulated host holds of its domain."""
    with server.db.read() as s:
        instance = s.get(Instance_, instance_id)
        host = s.get(Host, instance.host_id)
        name = host.name
    return sim.read_state(server.settings.data_dir, name)["domains"][f"gpucloud-{instance_id}"]


def event_percents(http, instance_id: int, action: str, until: float = 30) -> list[int]:
    """percent_complete of the instance's newest `action` event, polled until it finishes."""
    seen: list[int] = []
    deadline = time.monotonic() + until
    while time.monotonic() < deadline:
        found = [e for e in http.get("/account/events", params={"page_size": 100}).json()["data"]
                 if e["entity"]["id"] == instance_id and e["action"] == action]
        if found:
            event = max(found, key=lambda e: e["id"])
            if not seen or seen[-1] != event["percent_complete"]:
                seen.append(event["percent_complete"])
            if event["status"] in ("finished", "failed"):
                assert event["status"] == "finished", event
                return seen
        time.sleep(POLL_S / 2)
    raise AssertionError(f"{action} never finished: saw {seen}")


@pytest.fixture(scope="module")
def running(server, client) -> Instance:
    inst = client.linode.instance_create(PLAN, "us-east", image=IMAGE, label="rebuild-me", root_pass=ROOT_PASS)
    statuses_until(inst, "running")
    return inst


def test_rebuild_writes_a_fresh_disk_on_the_same_host_and_boots_it(server, client, running):
    before = domain_on_host(server, running.id)
    ipv4 = running.ipv4
    with server.db.read() as s:
        host = s.get(Instance_, running.id).host_id
    assert running.rebuild("linode/ubuntu24.04", root_pass="an0ther-Long-passw0rd") is True
    assert running.status == "rebuilding"
    with server.http(client.token) as http:
        percents = event_percents(http, running.id, "linode_rebuild")
    assert any(0 < p < 100 for p in percents) and percents[-1] == 100
    after = domain_on_host(server, running.id)
    assert after["image"] == "linode/ubuntu24.04" and after["disk_writes"] == before["disk_writes"] + 1
    assert after["root_pass_hash"] != before["root_pass_hash"] and after["gpus"] == before["gpus"]
    running.invalidate()
    assert running.status == "running" and running.image.id == "linode/ubuntu24.04" and running.ipv4 == ipv4
    with server.db.read() as s:
        assert s.get(Instance_, running.id).host_id == host


def test_a_polling_client_sees_rebuilding(server, client, running):
    running.rebuild(IMAGE, authorized_keys=[KEY])
    assert statuses_until(running, "running") == ["rebuilding", "booting", "running"]
    assert domain_on_host(server, running.id)["authorized_keys"] == [KEY]


def test_rebuild_refuses_what_it_cannot_do(server, client, running):
    with server.http(client.token) as http:
        url = f"/linode/instances/{running.id}/rebuild"
        no_image = http.post(url, json={"image": "linode/nope", "root_pass": ROOT_PASS}).json()["errors"]
        assert no_image == [{"field": "image", "reason": "image is not valid"}]
        no_way_in = http.post(url, json={"image": IMAGE}).json()["errors"]
        assert [e["field"] for e in no_way_in] == ["root_pass"]
        unoffered = http.post(url, json={"image": IMAGE, "root_pass": ROOT_PASS, "stackscript_id": 7,
                                         "type": BIGGER}).json()["errors"]
        assert {e["field"] for e in unoffered} == {"stackscript_id", "type"}
        assert all("not offered" in e["reason"] for e in unoffered)
        assert http.get(f"/linode/instances/{running.id}").json()["status"] == "running"  # nothing started


def test_rescue_boots_the_rescue_system_and_a_reboot_comes_back(server, client, running):
    running.rescue()
    assert statuses_until(running, "running") == ["rebooting", "running"]
    assert domain_on_host(server, running.id)["rescue"] is True
    running.reboot()
    statuses_until(running, "running")
    assert domain_on_host(server, running.id)["rescue"] is False


def test_root_password_reset_needs_the_instance_offline(server, client, running):
    with pytest.raises(ApiError) as refused:
        running.reset_instance_root_password("a-Third-passw0rd-long")
    assert refused.value.status == 400
    assert "Cannot reset the root password of this Linode while it is running" in str(refused.value)

    running.shutdown()
    statuses_until(running, "offline")
    before = domain_on_host(server, running.id)["root_pass_hash"]
    running.reset_instance_root_password("a-Third-passw0rd-long")
    with server.http(client.token) as http:
        event_percents(http, running.id, "password_reset")
        weak = http.post(f"/linode/instances/{running.id}/password", json={"root_pass": "short"})
        assert weak.status_code == 400 and weak.json()["errors"][0]["field"] == "root_pass"
    after = domain_on_host(server, running.id)["root_pass_hash"]
    assert after.startswith("$6$") and after != before
    running.invalidate()
    assert running.status == "offline"


def test_stats_and_transfer_come_from_the_hosts_counters(server, client):
    inst = client.linode.instance_create(PLAN, "us-east", image=IMAGE, label="stats-me", root_pass=ROOT_PASS)
    statuses_until(inst, "running")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stats = inst.stats  # linode_api4: GET …/stats
        if len(stats["data"]["cpu"]) >= 2:
            break
        time.sleep(0.5)
    data = stats["data"]
    assert len(data["cpu"]) >= 2 and stats["title"] == f"linode.com - stats-me (linode{inst.id}) - day (5 min avg)"
    assert all(0 < value <= 100 * 1 for _, value in data["cpu"])  # a one-vCPU Nanode
    assert all(value > 0 for _, value in data["netv4"]["out"]) and data["io"]["io"]
    t0, t1 = data["cpu"][0][0], data["cpu"][-1][0]
    assert t0 < t1 and abs(t1 / 1000 - time.time()) < 60  # milliseconds since the epoch, recent
    transfer = inst.transfer  # linode_api4: GET …/transfer
    assert transfer.used > 0 and transfer.quota == 1000 and transfer.billable == 0
    now = time.gmtime()
    month = inst.transfer_year_month(now.tm_year, now.tm_mon)  # GET …/transfer/{year}/{month}
    assert month.bytes_out >= transfer.used and month.bytes_total == month.bytes_in + month.bytes_out
    assert inst.transfer_year_month(2020, 1).bytes_total == 0
    with server.http(client.token) as http:
        assert http.get(f"/linode/instances/{inst.id}/transfer/2026/13").status_code == 404  # no such path
        monthly = http.get(f"/linode/instances/{inst.id}/stats/2026/11")
        assert monthly.status_code == 404 and "not offered" in monthly.json()["errors"][0]["reason"]
    with server.db.read() as s:  # the ring is bounded: at most stats_samples_kept rows
        assert s.query(InstanceSample).filter_by(instance_id=inst.id).count() <= server.settings.stats_samples_kept
