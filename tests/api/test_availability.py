"""`/regions/availability` and `/regions/{id}/availability`: Linode's shape, `available` true
exactly when the sellable figure operators see (`gpucloud capacity`) is above zero, GPU plans
only for accounts that may see them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from linode_api4 import ApiError

from gpucloud.hypervisor.profile import load_profile
from gpucloud.services import accounts, capacity, flags, hosts
from tests.api.conftest import LiveServer, _migrated
from tests.conftest import make_settings

GPU4 = "g1-gpu-rtx6000-4"


@pytest.fixture(scope="module")
def small_cloud(tmp_path_factory) -> Iterator[LiveServer]:
    """One 4-GPU host in eu-central and nothing else: a cloud small enough to fill in a test."""
    data_dir = tmp_path_factory.mktemp("availability")
    settings = make_settings(data_dir, f"sqlite:///{data_dir / 'gpucloud.sqlite'}", rate_limit_per_minute=0)
    db = _migrated(settings.resolved_database_url)
    hosts.register_host(db, settings, name="eu-central-1", region="eu-central", topology=load_profile("rtx6000-2s4g"),
                        driver="sim", profile="rtx6000-2s4g", actor="tests")
    server = LiveServer(settings, db, worker=False).start()
    yield server
    server.stop()
    db.dispose()


def _table(rows: list[dict]) -> dict[tuple[str, str], bool]:
    return {(r["region"], r["plan"]): r["available"] for r in rows}


def test_available_follows_the_sellable_figure_until_the_region_is_full(small_cloud):
    alice = small_cloud.customer()
    http = small_cloud.http(alice.token)
    before = _table(http.get("/regions/availability", params={"page_size": 500}).json()["data"])
    assert before[("eu-central", GPU4)] and before[("eu-central", "g1-gpu-rtx6000-1")]
    assert not before[("eu-central", "g3-gpu-h100-1")]  # no H100 anywhere
    assert not before[("us-east", GPU4)]  # no host there in this cloud
    created = http.post("/linode/instances", json={"type": GPU4, "region": "eu-central", "booted": False})
    assert created.status_code == 200, created.text
    after = _table(http.get("/regions/eu-central/availability").json())
    assert {r for r, _ in after} == {"eu-central"}
    rows = capacity.capacity(small_cloud.db, small_cloud.settings, "eu-central")
    sellable = {plan: n for row in rows for plan, n in row["sellable"].items()}
    for plan in (GPU4, "g1-gpu-rtx6000-1"):
        assert after[("eu-central", plan)] is (sellable[plan] > 0) is False


def test_gpu_plans_only_for_accounts_that_may_see_them(small_cloud):
    info = accounts.create_account(small_cloud.db, "dark@example.com", username="dark")
    dark = accounts.create_token(small_cloud.db, info.id, scopes="*", label="t").secret
    plans = {r["plan"] for r in small_cloud.http(dark).get("/regions/eu-central/availability").json()}
    assert plans and not any(p.startswith("g1-gpu") for p in plans)
    assert not any(r["plan"].startswith("g1-gpu") for r in
                   small_cloud.http().get("/regions/availability", params={"page_size": 500}).json()["data"])
    flags.allow(small_cloud.db, "gpu-instances", info.id, why="test", actor="tests")
    small_cloud.app.state.flags.refresh()
    plans = {r["plan"] for r in small_cloud.http(dark).get("/regions/eu-central/availability").json()}
    assert GPU4 in plans


def test_availability_through_the_clients(api_server, cli):
    alice = api_server.customer()
    http = api_server.http(alice.token)
    page = http.get("/regions/availability", headers={"X-Filter": json.dumps({"region": "us-east",
                                                                              "available": True})}).json()
    assert page["results"] > 0 and all(r["region"] == "us-east" and r["available"] for r in page["data"])
    rows = capacity.capacity(api_server.db, api_server.settings, "us-east")
    sellable = {plan: n for row in rows for plan, n in row["sellable"].items()}
    served = _table(http.get("/regions/us-east/availability").json())
    assert {p: served[("us-east", p)] for p in sellable} == {p: n > 0 for p, n in sellable.items()}
    assert http.get("/regions/nowhere/availability").json() == {"errors": [{"reason": "Not found"}]}

    code, out, err = cli("regions", "list-avail", "--json")
    assert code == 0, err
    assert {(r["region"], r["plan"]) for r in json.loads(out)} >= {("us-east", "g1-gpu-rtx6000-1")}
    code, out, err = cli("regions", "view-avail", "us-east", "--json")
    assert code == 0, err
    assert {r["region"] for r in json.loads(out)} == {"us-east"}
    with pytest.raises(ApiError):
        api_server.client(alice.token).get("/regions/nowhere/availability")
