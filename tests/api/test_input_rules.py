"""Issue 12, items 1, 2, 3, 10 and 11: inputs that gave a 500 or were wrongly accepted, and the
places where /v4/openapi.json and the server disagreed. Each test failed before the fix."""

from __future__ import annotations

import httpx
import pytest

from gpucloud.domain.flags import GPU_INSTANCES
from gpucloud.services import flags
from tests.api.test_bad_input import assert_linode_error

GPU = "g1-gpu-rtx6000-1"
STRONG = "a-Long-passw0rd"


# --- item 1: range operators on list fields -------------------------------------------------------

@pytest.mark.parametrize("op", ["+gt", "+gte", "+lt", "+lte"])
def test_range_operators_on_list_fields_answer_not_500(api_server, op):
    customer = api_server.customer()
    with api_server.http() as anonymous, api_server.http(customer.token) as http:
        regions = anonymous.get("/regions", headers={"X-Filter": f'{{"capabilities": {{"{op}": 1}}}}'})
        assert regions.status_code == 200, regions.text
        assert regions.json()["results"] == 0  # no capability is a number
        for field in ("tags", "ipv4"):
            listed = http.get("/linode/instances", headers={"X-Filter": f'{{"{field}": {{"{op}": 1}}}}'})
            assert listed.status_code == 200, listed.text


def test_range_operators_compare_list_elements(api_server):
    customer = api_server.customer()
    with api_server.http(customer.token) as http:
        made = http.post("/linode/instances", json={"type": "g6-nanode-1", "region": "us-east",
                                                    "tags": ["alpha", "omega"], "booted": False})
        assert made.status_code == 200, made.text
        above = http.get("/linode/instances", headers={"X-Filter": '{"tags": {"+gt": "nu"}}'}).json()
        below = http.get("/linode/instances", headers={"X-Filter": '{"tags": {"+lt": "alpha"}}'}).json()
        assert [i["id"] for i in above["data"]] == [made.json()["id"]] and below["results"] == 0


# --- item 2: token expiry that overflows once moved to UTC ------------------------------------------

@pytest.mark.parametrize("expiry", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_token_expiry_out_of_the_calendar_is_a_400(api_server, expiry):
    with api_server.http(api_server.customer().token) as http:
        errors = assert_linode_error(http.post("/profile/tokens", json={"expiry": expiry}))
    assert errors == [{"field": "expiry", "reason": "expiry must be a time like 2030-01-31T00:00:00"}]


# --- item 3: control characters, on both databases --------------------------------------------------

def test_control_characters_are_refused_naming_the_field(any_api_server):
    server = any_api_server
    customer = server.customer()
    with server.http(customer.token) as http:
        create = {"type": "g6-nanode-1", "region": "us-east", "booted": False}
        errors = assert_linode_error(http.post("/linode/instances", json={**create, "group": "a\u0000b"}))
        assert errors == [{"field": "group", "reason": "group must not contain control characters"}]
        errors = assert_linode_error(http.post("/linode/instances", json={**create, "tags": ["ok-tag", "x\u001fy"]}))
        assert errors == [{"field": "tags[1]", "reason": "tags[1] must not contain control characters"}]
        assert http.get("/linode/instances").json()["results"] == 0  # nothing half-written

        made = http.post("/linode/instances", json=create)
        assert made.status_code == 200, made.text
        path = f"/linode/instances/{made.json()['id']}"
        errors = assert_linode_error(http.put(path, json={"group": "a\u0000b"}))
        assert errors[0]["field"] == "group"
        assert http.get(path).json()["group"] == ""

        errors = assert_linode_error(http.post("/profile/tokens", json={"label": "lab\u0000el"}))
        assert errors[0]["field"] == "label"
        errors = assert_linode_error(http.get("/account/events", headers={"X-Filter": '{"action": "a\\u0000b"}'}))
        assert errors[0]["field"] == "X-Filter"
        errors = assert_linode_error(http.get("/account/events", params={"page": "1\x00"}))
        assert errors[0]["field"] == "page"
        assert_linode_error(http.get("/images/linode/deb%00ian12"), 404)
        assert http.get("/linode/instances", headers={"X-Filter": '{"label": "\\u00e9t\\u00e9"}'}).status_code == 200


def test_admin_login_with_a_control_character_is_refused_not_500(any_api_server):
    with httpx.Client(base_url=any_api_server.url, timeout=30) as client:
        response = client.post("/admin/login", data={"username": "adm\x00in", "password": "x", "csrf_token": "x"})
    assert_linode_error(response)


# --- item 10: input rules -----------------------------------------------------------------------------

@pytest.mark.parametrize(("field", "value"), [("label", "abc\n"), ("label", "ab-"), ("root_pass", "Passw0rd"),
                                              ("root_pass", "a" * 16)])
def test_create_refuses_bad_labels_and_weak_passwords(api_server, field, value):
    with api_server.http(api_server.customer().token) as http:
        body = {"type": "g6-nanode-1", "region": "us-east", "image": "linode/debian12", "root_pass": STRONG,
                field: value}
        errors = assert_linode_error(http.post("/linode/instances", json=body))
    assert [e["field"] for e in errors] == [field]


def test_an_id_is_plain_digits(api_server):
    with api_server.http(api_server.customer().token) as http:
        made = http.post("/linode/instances", json={"type": "g6-nanode-1", "region": "us-east", "booted": False})
        number = made.json()["id"]
        assert http.get(f"/linode/instances/{number}").status_code == 200
        for spelled in (f"{number}.0", f"+{number}", f"{number}e0", f" {number}", f"0x{number:x}", "１"):
            assert_linode_error(http.get(f"/linode/instances/{spelled}"), 404)


def test_a_hidden_gpu_plan_answers_like_an_unknown_one(tmp_path):
    from tests.api.conftest import _migrated, _start
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'gpucloud.sqlite'}", sim_boot_seconds=0.2)
    db = _migrated(settings.resolved_database_url)
    server = _start(settings, db)
    try:
        flags.set_state(db, GPU_INSTANCES, "staff", None, why="test", actor="tests")
        server.app.state.flags.refresh()
        outsider = server.customer(gpu=False)
        with server.http(outsider.token) as http:
            answers = []
            for plan in (GPU, "g1-gpu-nosuch-1"):
                base = {"type": plan, "region": "us-east"}
                answers.append([
                    (r.status_code, r.json()) for r in (
                        http.post("/linode/instances", json=base),
                        http.post("/linode/instances", json={**base, "label": "x"}),  # with another field error
                        http.get(f"/linode/types/{plan}"),
                    )])
            made = http.post("/linode/instances", json={"type": "g6-nanode-1", "region": "us-east", "booted": False})
            resized = [http.post(f"/linode/instances/{made.json()['id']}/resize", json={"type": plan})
                       for plan in (GPU, "g1-gpu-nosuch-1")]
        assert answers[0] == answers[1]
        assert answers[0][0] == (400, {"errors": [{"reason": "A valid plan type by that ID was not found",
                                                   "field": "type"}]})
        assert [(r.status_code, r.json()) for r in resized][0] == (resized[1].status_code, resized[1].json())
    finally:
        server.stop()
        db.dispose()


# --- item 11: the spec says what is served -------------------------------------------------------------

def test_x_filter_null_is_no_filter(api_server):
    with api_server.http(api_server.customer().token) as http:
        for path in ("/linode/instances", "/account/events", "/profile/tokens", "/regions"):
            response = http.get(path, headers={"X-Filter": "null"})
            assert response.status_code == 200, (path, response.text)


def test_public_operations_are_documented_as_token_optional(api_server):
    schema = httpx.get(f"{api_server.base()}/openapi.json").json()
    public = set()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            security = operation.get("security")
            assert security, (method, path)
            if {} in security:
                public.add((method.upper(), path))
            url = api_server.url + path.replace("{type_id}", "g6-nanode-1").replace("{region_id}", "us-east") \
                .replace("{vendor}/{name}", "linode/debian12")
            if "{" in url or method != "get":
                continue
            anonymous = httpx.get(url)
            assert (anonymous.status_code != 401) is ((method.upper(), path) in public), (path, anonymous.status_code)
    assert ("GET", "/v4/regions") in public and ("GET", "/v4/linode/instances") not in public


@pytest.mark.parametrize(("path", "methods"), [("/linode/instances", "GET, POST"),
                                               ("/linode/instances/1", "DELETE, GET, PUT"),
                                               ("/profile/tokens/1", "DELETE, GET, PUT"),
                                               ("/images/linode/debian12", "DELETE, GET"),
                                               ("/regions", "GET")])
def test_405_names_every_method_served_there(api_server, path, methods):
    with api_server.http(api_server.customer().token) as http:
        response = http.request("PATCH", path)
    assert response.status_code == 405 and response.headers["allow"] == methods
