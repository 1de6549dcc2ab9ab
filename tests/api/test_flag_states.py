"""GPU plans through linode_api4 in each state of the `gpu-instances` flag: hidden or shown,
refused with a clear reason or accepted. A server of its own: the flag is global."""

from __future__ import annotations

import pytest
from linode_api4 import ApiError

from gpucloud.domain.flags import GPU_INSTANCES, bucket
from gpucloud.services import flags
from tests.api.conftest import _migrated, _start
from tests.conftest import make_settings

GPU = "g1-gpu-rtx6000-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("flag-states")
    settings = make_settings(data_dir, f"sqlite:///{data_dir / 'gpucloud.sqlite'}", sim_boot_seconds=0.2)
    db = _migrated(settings.resolved_database_url)
    live = _start(settings, db)
    yield live
    live.stop()
    db.dispose()


def set_flag(server, state: str, percent: int | None = None) -> None:
    flags.set_state(server.db, GPU_INSTANCES, state, percent, why=f"test: {state}", actor="tests")
    server.app.state.flags.refresh()


def sees_gpu_types(server, customer) -> bool:
    return any(t.type_class == "gpu" for t in server.client(customer.token).linode.types())


def can_create(server, customer) -> bool:
    """A GPU plan the account cannot see is refused exactly like a plan that does not exist."""
    try:
        server.client(customer.token).linode.instance_create(GPU, "us-east", booted=False)
    except ApiError as err:
        hidden = "A valid plan type by that ID was not found"
        assert err.status == 400 and (hidden in str(err)) is not sees_gpu_types(server, customer), str(err)
        return False
    return True


def test_each_state_of_the_flag(server):
    staff = server.customer(gpu=False, staff=True)
    early, late = server.customer(gpu=False), server.customer(gpu=False)
    while bucket(GPU_INSTANCES, early.account_id) == bucket(GPU_INSTANCES, late.account_id):
        late = server.customer(gpu=False)
    if bucket(GPU_INSTANCES, early.account_id) > bucket(GPU_INSTANCES, late.account_id):
        early, late = late, early

    expected = {  # state -> (staff, early, late)
        ("off", None): (False, False, False),
        ("staff", None): (True, False, False),
        ("percent", bucket(GPU_INSTANCES, late.account_id)): (True, True, False),  # early's bucket is below
        ("on", None): (True, True, True),
    }
    for (state, percent), wanted in expected.items():
        set_flag(server, state, percent)
        seen = tuple(sees_gpu_types(server, c) for c in (staff, early, late))
        created = tuple(can_create(server, c) for c in (staff, early, late))
        assert seen == wanted, (state, percent)
        assert created == wanted, (state, percent)
