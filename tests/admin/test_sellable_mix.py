"""The admin Sellable view shows the demand mix `pack` keeps room for, per region, as
`gpucloud capacity` prints it: learnt from a region's creates, the default elsewhere, and the
operator's mix when one is set."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from gpucloud.clock import utcnow
from gpucloud.config import load_settings
from gpucloud.services import accounts
from gpucloud.store.db import Database
from gpucloud.store.tables import UsageInterval
from tests.admin.conftest import admin_client
from tests.live import run_cli, start_server

MIX_BLOCK = re.compile(r'<div data-mix-region="([^"]*)" data-mix-source="(\w+)">(.*?)</div>', re.S)
PLAN = re.compile(r'data-mix-plan="([^"]+)" data-share="([0-9.]+)"')


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A demo's data directory where us-east sold 18 one-GPU and 1 two-GPU RTX 6000 in the last hour."""
    path = tmp_path_factory.mktemp("mix")
    start_server(path, "--demo").stop()
    db = Database(load_settings({"data_dir": str(path)}, environ={}).resolved_database_url)
    buyer = accounts.create_account(db, "mix@example.com")
    started = utcnow() - timedelta(hours=1)
    with db.write() as s:
        for i in range(19):
            s.add(UsageInterval(account_id=buyer.id, instance_id=5000 + i, label="x", region_id="us-east",
                                type_id="g1-gpu-rtx6000-2" if i == 0 else "g1-gpu-rtx6000-1", started_at=started))
    db.dispose()
    return path


def shown_mix(html: str, model: str) -> dict[tuple[str, str], dict[str, float]]:
    """(region, source) -> plan -> share, as the model's card on the page shows them."""
    card = html.split(f'data-sellable-model="{model}"', 1)[1].split("</section>", 1)[0]
    return {(region, source): {p: float(v) for p, v in PLAN.findall(body)}
            for region, source, body in MIX_BLOCK.findall(card)}


def cli_mix(data_dir, model: str, env: dict | None = None) -> dict[str, dict[str, float]]:
    """region ('' = elsewhere) -> plan -> share in percent, from `gpucloud capacity`'s text."""
    out = run_cli(data_dir, "capacity", env=env).stdout.split("demand mix", 1)[1]
    found = {}
    for region, plans in re.findall(rf"^  (\S+ )?{model}: (.+)$", out, re.M):
        found[region.strip()] = {p: float(v) for p, v in re.findall(r"(\S+) (\d+)%", plans)}
    return found


def test_the_sellable_view_shows_the_mix_learnt_per_region_as_capacity_prints_it(data_dir):
    server = start_server(data_dir)
    try:
        client = admin_client(server)
        html = client.get("/admin/sellable").text
        mumbai = client.get("/admin/sellable?region=mumbai").text
    finally:
        server.stop()
    mix = shown_mix(html, "rtx6000")
    assert list(mix) == [("us-east", "learnt"), ("", "default")]  # the learnt region first, then the rest
    learnt = mix[("us-east", "learnt")]
    assert max(learnt, key=learnt.__getitem__) == "g1-gpu-rtx6000-1" and learnt["g1-gpu-rtx6000-1"] > 0.8
    assert learnt["g1-gpu-rtx6000-4"] >= 0.04  # the multi-GPU floor: never sold, still kept room for
    assert set(mix[("", "default")].values()) == {0.25}  # nothing learnt elsewhere: every plan alike
    assert sum(learnt.values()) == pytest.approx(1.0, abs=1e-3)
    printed = cli_mix(data_dir, "rtx6000")
    assert {p: round(100 * v) for p, v in learnt.items()} == printed["us-east"]
    assert shown_mix(html, "h100") == {("", "default"): {f"g3-gpu-h100-{n}": 0.25 for n in (1, 2, 3, 4)}}
    assert list(shown_mix(mumbai, "rtx6000")) == [("", "default")]  # Mumbai learnt nothing: only the mix it uses


def test_an_operators_mix_replaces_the_learnt_one_on_the_view(data_dir):
    env = {"GPUCLOUD_PLACEMENT_DEMAND_MIX": "g1-gpu-rtx6000-2=3,g1-gpu-rtx6000-1=1"}
    server = start_server(data_dir, env=env)
    try:
        html = admin_client(server).get("/admin/sellable").text
    finally:
        server.stop()
    mix = shown_mix(html, "rtx6000")
    assert list(mix) == [("", "operator")]
    # 3 : 1, and the 3- and 4-GPU plans at the floor (5 % of the model's weight, 4 + 0.2 + 0.2)
    assert mix[("", "operator")] == pytest.approx(
        {"g1-gpu-rtx6000-2": 3 / 4.4, "g1-gpu-rtx6000-1": 1 / 4.4, "g1-gpu-rtx6000-3": 0.2 / 4.4,
         "g1-gpu-rtx6000-4": 0.2 / 4.4}, abs=1e-4)
    assert {p: round(100 * v) for p, v in mix[("", "operator")].items()} == cli_mix(data_dir, "rtx6000", env)[""]
