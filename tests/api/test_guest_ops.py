"""What a customer does to a running guest, through linode_api4 against a live server whose
simulated hosts take (short) real time for each step: every transitional status is seen by a
polling client. A server of its own: the step times differ from the shared server's."""

from __future__ import annotations

import time

import pytest
from linode_api4 import Instance, LinodeClient

from tests.api.conftest import _migrated, _start
from tests.conftest import make_settings

STEP_S = 1.0  # each simulated step; the poller looks every POLL_S
POLL_S = 0.3
PLAN, BIGGER = "g6-nanode-1", "g6-standard-1"
IMAGE = "linode/debian12"
ROOT_PASS = "a-Long-passw0rd-4-tests"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("guest-ops")
    settings = make_settings(data_dir, f"sqlite:///{data_dir / 'gpucloud.sqlite'}", worker_poll_seconds=0.05,
                             sim_provision_seconds=STEP_S, sim_boot_seconds=STEP_S, sim_shutdown_seconds=STEP_S,
                             sim_resize_seconds=STEP_S, sim_rebuild_seconds=STEP_S)
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
