"""The admin interface in Debian's Chromium, against a real `gpucloud serve --demo`: log in,
read the dashboard (the same numbers as `gpucloud capacity`), boot a GPU instance with one
click and watch it run, drain a host and watch its sellable capacity go, flip a flag and
see an account's instance types change through linode_api4."""

from __future__ import annotations

import json
import time

import pytest
from linode_api4 import Instance, LinodeClient

from tests.live import run_cli

pytestmark = pytest.mark.browser

H100_HOST = "us-east-h100-nps4-8g-01"
FIELDS = ("total", "claimed", "claimed_customer", "claimed_staff", "free", "unavailable", "stranded")

READ_CAPACITY_TABLE = """rows => rows.map(tr => {
  const row = {region: tr.dataset.region, gpu_model: tr.dataset.model, sellable: {}, unavailable_reasons: {}};
  tr.querySelectorAll('[data-field]').forEach(td => row[td.dataset.field] = parseInt(td.textContent, 10));
  tr.querySelectorAll('[data-sellable]').forEach(b => row.sellable[b.dataset.sellable] = parseInt(b.textContent, 10));
  tr.querySelectorAll('[data-reason]').forEach(s => row.unavailable_reasons[s.dataset.reason] =
      parseInt(s.textContent.split(' ').pop(), 10));
  return row;
})"""


def capacity_json(server) -> list[dict]:
    return json.loads(run_cli(server.data_dir, "capacity", "--json").stdout)


def dashboard_rows(page, server) -> list[dict]:
    page.goto(server.url + "/admin/")
    return page.eval_on_selector_all("table[data-capacity] tr[data-region]", READ_CAPACITY_TABLE)


def test_login_refuses_a_wrong_password_then_lets_the_operator_in(page, server):
    page.goto(server.url + "/admin/hosts")
    assert "/admin/login" in page.url
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "certainly-wrong")
    page.click("button[type=submit]")
    assert page.inner_text("[data-login-error]") == "Wrong username or password."

    page.fill("input[name=password]", server.demo()["admin_password"])
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Hosts')")  # back where it was going
    assert page.url.endswith("/admin/hosts")
    assert page.locator("tr[data-host]").count() == len(json.loads(run_cli(server.data_dir, "host", "list",
                                                                           "--json").stdout))


def test_the_dashboard_shows_exactly_the_capacity_numbers(admin_page, server):
    expected = capacity_json(server)
    shown = dashboard_rows(admin_page, server)
    assert shown == [{k: r[k] for k in ("region", "gpu_model", *FIELDS, "sellable", "unavailable_reasons")}
                     for r in expected]
    totals = {f: sum(r[f] for r in expected) for f in ("total", "claimed", "free", "unavailable", "stranded")}
    assert {f: int(admin_page.inner_text(f"[data-total={f}]")) for f in totals} == totals
    assert admin_page.locator("svg.chart").count() == 1


def test_boot_a_gpu_instance_with_one_click_and_follow_it_through_the_pages(admin_page, server):
    """One test, because each step needs the instance the click made (xdist may split a module)."""
    page, demo = admin_page, server.demo()
    page.goto(server.url + "/admin/accounts?q=customer@example.com")
    page.click("a:has-text('customer@example.com')")
    account_url = page.url

    # only plans sellable in the chosen region are offered (Mumbai has no H100)
    page.select_option("[data-boot-form] select[name=region]", "ap-west")
    offered = page.eval_on_selector_all("[data-boot-form] select[name=plan] option:not([disabled])",
                                        "os => os.map(o => o.value)")
    sellable_here = {p for r in capacity_json(server) if r["region"] == "ap-west" for p, n in r["sellable"].items() if n}
    assert set(offered) == sellable_here and not any("h100" in p for p in offered)

    # a refused boot keeps what was chosen
    page.select_option("[data-boot-form] select[name=plan]", "g1-gpu-rtx6000-2")
    page.fill("[data-boot-form] input[name=label]", "-bad label-")
    page.click("[data-boot-button]")
    assert "Nothing was created" in page.inner_text("[data-boot-refused]")
    assert page.input_value("[data-boot-form] select[name=region]") == "ap-west"
    assert page.input_value("[data-boot-form] select[name=plan]") == "g1-gpu-rtx6000-2"
    assert page.input_value("[data-boot-form] input[name=label]") == "-bad label-"

    page.select_option("[data-boot-form] select[name=region]", "us-east")
    page.select_option("[data-boot-form] select[name=plan]", "g1-gpu-rtx6000-1")
    page.fill("[data-boot-form] input[name=label]", "")
    page.click("[data-boot-button]")

    booted = page.wait_for_selector("[data-booted]")
    instance_id = int(booted.get_attribute("data-booted"))
    password = page.inner_text("[data-root-password]")
    assert len(password) >= 16
    link = page.inner_text("[data-password-link]")
    assert page.url == account_url  # reloading the page does not boot again
    page.wait_for_selector(f"[data-progress='{instance_id}'] [data-status=running]", timeout=60_000)
    assert page.inner_text(f"[data-progress='{instance_id}'] [data-percent]") == "100%"
    # the instance table under it says running too, without a reload
    assert page.inner_text(f"tr[data-instance='{instance_id}'] [data-status-cell]") == "running"

    # the customer opens the password link once
    opened = page.context.new_page()
    opened.goto(link)
    assert opened.inner_text("[data-password]") == password
    assert opened.goto(link).status == 410 and opened.locator("[data-password-gone]").count() == 1
    opened.close()
    customer = LinodeClient(demo["customer_token"], base_url=server.api, retry=False)
    instance = customer.load(Instance, instance_id)
    assert (instance.status, instance.type.id, instance.region.id) == ("running", "g1-gpu-rtx6000-1", "us-east")

    # the instance page: its GPU, its job and event, its domain XML
    page.goto(server.url + f"/admin/instances/{instance_id}")
    addresses = [e.inner_text() for e in page.query_selector_all("[data-claimed-gpu] code")]
    assert len(addresses) == 1
    assert page.locator("tr[data-job] [data-status=succeeded]").count() == 1
    assert "linode_create" in page.inner_text("body")
    page.click("[data-domain-xml] summary")
    bus = addresses[0][5:7]  # 0000:86:00.0 -> 86: the GPU passed through by VFIO
    assert f'<address domain="0x0000" bus="0x{bus}" slot="0x00" function="0x0"/>' in page.inner_text("pre.xml")
    page.goto(server.url + f"/admin/instances?q={addresses[0]}")  # found by its GPU
    assert [e.get_attribute("data-instance") for e in page.query_selector_all("tr[data-instance]")] == [
        str(instance_id)]

    # its host's picture: 8 thread strips and one GPU in the instance's colour
    page.click("tr[data-instance] a[href*='/hosts/']")
    page.wait_for_selector("svg[data-topology]")
    colour = page.eval_on_selector(f"[data-holder='{instance_id}'] .sw", "e => e.style.background")
    held = page.eval_on_selector_all("svg[data-topology] rect.thread",
                                     "(rects, c) => rects.filter(r => getComputedStyle(r).fill === c).length", colour)
    assert held == 8  # g1-gpu-rtx6000-1: 8 dedicated vCPUs
    assert page.locator("svg[data-topology] .gpu.held").count() == 1


def test_drain_a_host_and_see_its_sellable_capacity_drop(admin_page, server):
    before = {(r["region"], r["gpu_model"]): r for r in dashboard_rows(admin_page, server)}[("us-east", "h100")]
    assert before["sellable"]["g3-gpu-h100-1"] == 8

    admin_page.goto(server.url + f"/admin/hosts/{H100_HOST}")
    admin_page.fill("[data-host-actions] input[name=why]", "firmware update")
    admin_page.click("[data-host-actions] button[value=drain]")
    assert "is now draining" in admin_page.inner_text("[data-flash=ok]")
    assert admin_page.inner_text("h1 [data-status]") == "draining"

    after = {(r["region"], r["gpu_model"]): r for r in dashboard_rows(admin_page, server)}[("us-east", "h100")]
    assert after["sellable"] == {plan: 0 for plan in before["sellable"]}
    assert (after["free"], after["unavailable_reasons"]) == (0, {"host-draining": 8})
    expected = next(r for r in capacity_json(server) if (r["region"], r["gpu_model"]) == ("us-east", "h100"))
    assert after["sellable"] == expected["sellable"]


def test_flip_a_flag_and_the_account_sees_gpu_types(admin_page, server):
    customer = LinodeClient(server.demo()["customer_token"], base_url=server.api, retry=False)

    def gpu_types() -> list[str]:
        return sorted(t.id for t in customer.linode.types() if t.type_class == "gpu")

    assert gpu_types() == []  # gpu-instances starts in the staff state; this account is no staff
    admin_page.goto(server.url + "/admin/flags")
    card = "[data-flag=gpu-instances]"
    admin_page.check(f"{card} [data-state-form] input[value=on]", force=True)
    admin_page.fill(f"{card} [data-state-form] input[name=why]", "general availability")
    admin_page.click(f"{card} [data-state-form] button[type=submit]")
    assert admin_page.inner_text("[data-flash=ok]") == "gpu-instances is now on."
    assert admin_page.inner_text(f"{card} [data-flag-state] [data-status]") == "on"

    deadline = time.monotonic() + 15  # every process polls the flags version every 2 s
    while not gpu_types() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert "g1-gpu-rtx6000-1" in gpu_types()
    history = json.loads(run_cli(server.data_dir, "flags", "history", "--json").stdout)[0]
    assert (history["actor"], history["why"], history["after"]) == ("admin:admin", "general availability",
                                                                    {"state": "on", "percent": 0})


READ_SELLABLE = """sections => sections.map(s => ({model: s.dataset.sellableModel, regions: Array.from(
  s.querySelectorAll('tr[data-region]')).map(tr => ({region: tr.dataset.region,
    city: tr.querySelector('td strong').textContent,
    sellable: Object.fromEntries(Array.from(tr.querySelectorAll('[data-plan]')).map(
      td => [td.dataset.plan, parseInt(td.textContent, 10)])),
    free: parseInt(tr.querySelector('[data-field=free]').textContent, 10),
    hints: tr.querySelector('[data-hints]').innerText}))}))"""


def test_sellable_answers_how_many_h100_in_mumbai_and_matches_capacity_json(admin_page, server):
    admin_page.goto(server.url + "/admin/sellable")
    shown = admin_page.eval_on_selector_all("[data-sellable-model]", READ_SELLABLE)
    expected = {(r["region"], r["gpu_model"]): r for r in capacity_json(server)}
    for model in shown:
        for r in model["regions"]:
            row = expected.get((r["region"], model["model"]))
            assert r["sellable"] == {p: (row["sellable"][p] if row else 0) for p in r["sellable"]}
            assert r["free"] == (row["free"] if row else 0)
    h100 = {r["region"]: r for m in shown if m["model"] == "h100" for r in m["regions"]}
    assert h100["ap-west"]["city"] == "Mumbai, IN"
    assert set(h100["ap-west"]["sellable"].values()) == {0}  # zeros shown, not a missing row
    assert h100["ap-west"]["hints"] == "no host has h100 GPUs"
    assert h100["us-central"]["hints"] == "the region offers no GPU plans"

    admin_page.fill("input[name=region]", "mumbai")
    admin_page.click("form.filters button")
    rows = admin_page.eval_on_selector_all("[data-sellable-model] tr[data-region]", "trs => trs.map(t => t.dataset.region)")
    assert set(rows) == {"ap-west"}


def test_unplaceable_gpus_never_look_free_and_a_rollout_shows_its_accounts(admin_page, server):
    page, host = admin_page, "us-east-rtx6000-numa-unknown-01"
    page.goto(server.url + "/admin/hosts?region=us-east")
    cell = page.locator(f"tr[data-host='{host}'] [data-free]")
    assert (cell.get_attribute("data-free"), cell.get_attribute("data-unavailable")) == ("0", "4")
    assert "NUMA node unknown 4" in page.inner_text(f"tr[data-host='{host}'] [data-unplaceable]")
    page.goto(server.url + f"/admin/hosts/{host}")
    cards = page.eval_on_selector_all("svg[data-topology] .gpu .gpu-line2", "ts => ts.map(t => t.textContent)")
    assert cards == ["NUMA node unknown"] * 4
    assert page.get_attribute("[data-gpu-tile] [data-free]", "data-free") == "0"

    run_cli(server.data_dir, "flags", "set", "gpu-region-ap-west", "percent", "--percent", "50", "--why", "stage 2")
    who = json.loads(run_cli(server.data_dir, "flags", "who", "gpu-region-ap-west", "--json").stdout)
    page.goto(server.url + "/admin/flags")
    rollout = "[data-rollout=gpu-region-ap-west]"
    assert int(page.inner_text(f"{rollout} [data-rollout-count]")) == len(who)
    assert sorted(int(r.get_attribute("data-member")) for r in page.query_selector_all(f"{rollout} tr[data-member]")) \
        == sorted(a["id"] for a in who)


def test_cli_boot_follows_the_instance_until_it_runs(server):
    proc = run_cli(server.data_dir, "instance", "boot", "--account", "customer@example.com", "--plan",
                   "g1-gpu-rtx6000-1", "--region", "Mumbai", "--label", "cli-boot", "--timeout", "90")
    assert "instance" in proc.stdout and "cli-boot" in proc.stdout and proc.stdout.rstrip().endswith("is running")
    assert "root password (shown once)" in proc.stdout and "/password/" in proc.stdout
    [row] = json.loads(run_cli(server.data_dir, "instance", "list", "cli-boot", "--json").stdout)
    assert (row["status"], row["region"], row["gpu_model"], row["gpu_count"]) == ("running", "ap-west", "rtx6000", 1)
