"""Bad input is a 400 (or 404) with a Linode-shaped reason, never a 500: explicit cases, then a
fuzz over every operation in /v4/openapi.json."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

WRITES = [("POST", "/linode/instances"), ("PUT", "/linode/instances/{id}"), ("POST", "/profile/tokens"),
          ("POST", "/linode/instances/{id}/resize"), ("POST", "/linode/instances/{id}/boot")]


def assert_linode_error(response: httpx.Response, status: int = 400) -> list[dict]:
    assert response.status_code == status, response.text
    errors = response.json()["errors"]
    assert errors and all(isinstance(e["reason"], str) and e["reason"] for e in errors)
    assert all(set(e) <= {"reason", "field"} for e in errors)
    return errors


@pytest.fixture(scope="module")
def http(api_server):
    customer = api_server.customer()
    with api_server.http(customer.token) as client:
        yield client


MALFORMED = [b"{not json", b"\xff\xfe", b'{"label": "x",}', b"[1, 2]", b'"text"', b"null"]


@pytest.mark.parametrize(("method", "path", "raw"), [
    (method, path, raw) for method, path in WRITES for raw in MALFORMED
    if not (path.endswith("/boot") and raw == b"null")  # boot's body is optional: null is no body
])
def test_malformed_bodies(http, method, path, raw):
    errors = assert_linode_error(http.request(method, path.format(id=1), content=raw))
    assert errors[0]["reason"] in ("Invalid JSON", "The request body must be a JSON object")


@pytest.mark.parametrize(("body", "field", "reason"), [
    ({"type": "g1-gpu-rtx6000-1", "region": "us-east", "label": 5}, "label", "label must be a string"),
    ({"type": ["g1-gpu-rtx6000-1"], "region": "us-east"}, "type", "type must be a string"),
    ({"type": "g1-gpu-rtx6000-1", "region": "us-east", "booted": "yes"}, "booted", "booted must be a boolean"),
    ({"type": "g1-gpu-rtx6000-1", "region": "us-east", "tags": "ml"}, "tags", "tags must be a list"),
    ({"type": "g1-gpu-rtx6000-1", "region": "us-east", "swap_size": 1.5}, "swap_size",
     "swap_size must be an integer"),
    ({"type": "g1-gpu-rtx6000-1", "region": "us-east", "flavor": "large"}, "flavor",
     "flavor is not a field this endpoint accepts"),
    ({"type": "g1-gpu-rtx6000-1", "region": "us-east", "metadata": {"user_data": 1}}, "metadata.user_data",
     "user_data must be a string"),
])
def test_wrong_types_and_unknown_fields_name_the_field(http, body, field, reason):
    errors = assert_linode_error(http.post("/linode/instances", json=body))
    assert {"field": field, "reason": reason} in errors


def test_nested_and_token_bodies(http):
    errors = assert_linode_error(http.put("/linode/instances/1", json={"alerts": {"cpu": "high"}}))
    assert errors == [{"field": "alerts.cpu", "reason": "cpu must be an integer"}]
    errors = assert_linode_error(http.post("/profile/tokens", json={"expiry": "next week"}))
    assert errors == [{"field": "expiry", "reason": "expiry must be a time like 2030-01-31T00:00:00"}]
    errors = assert_linode_error(http.post("/profile/tokens", json={"scopes": "rockets:read_only"}))
    assert errors[0]["field"] == "scopes"
    assert_linode_error(http.post("/linode/instances/1/resize", json={}))  # type is required


def test_huge_bodies_are_refused_before_parsing(http, api_server):
    limit = api_server.settings.max_body_bytes
    big = json.dumps({"label": "x" * (limit + 1)}).encode()
    errors = assert_linode_error(http.post("/linode/instances", content=big))
    assert errors == [{"reason": "Request body is too large"}]

    def chunks():  # no Content-Length: counted while read
        for _ in range(limit // 1024 + 2):
            yield b" " * 1024

    assert_linode_error(http.post("/profile/tokens", content=chunks()))


@pytest.mark.parametrize("query", ["page=0", "page=abc", "page_size=24", "page_size=501", "page_size=1e3"])
def test_bad_paging(http, query):
    for path in ("/linode/instances", "/linode/types", "/account/events"):
        errors = assert_linode_error(http.get(f"{path}?{query}"))
        assert errors[0]["field"] in ("page", "page_size")


def test_paging_is_ignored_on_single_objects(http):
    assert http.get("/profile?page=0&page_size=9999").status_code == 200


@pytest.mark.parametrize("x_filter", ["{", "[]", '{"secret_field": 1}', '{"+and": 5}', '{"label": {"+regex": "x"}}',
                                      '{"+order_by": "root_pass"}'])
def test_bad_filters(http, x_filter):
    for path in ("/linode/instances", "/linode/types", "/regions", "/account/events", "/images"):
        errors = assert_linode_error(http.get(path, headers={"X-Filter": x_filter}))
        assert errors[0]["field"] == "X-Filter"


@pytest.mark.parametrize("path", ["/linode/instances/abc", "/linode/instances/99999999999999999999999",
                                  "/account/events/x", "/profile/tokens/-", "/images/linode", "/nothing"])
def test_paths_that_name_nothing_are_404(http, path):
    assert assert_linode_error(http.get(path), 404) == [{"reason": "Not found"}]


# --- a fuzz over the published schema ----------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def _operations(schema: dict) -> list[tuple[str, str, list[str]]]:
    """(method, path under /v4, property names of its body) for every operation."""
    out = []
    for path, item in schema["paths"].items():
        for method, op in item.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            ref = body.get("$ref") or next((a.get("$ref") for a in body.get("anyOf", []) if "$ref" in a), None)
            props = list(schema["components"]["schemas"][ref.rsplit("/", 1)[-1]].get("properties", {})) if ref else []
            out.append((method.upper(), path.removeprefix("/v4"), props))
    return out


def _fill(path: str, draw) -> str:
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        value = draw(st.sampled_from(["1", "0", "-1", "abc", "99999999999", "linode", "%2F", "x" * 300]))
        path = path[:start] + value + path[end + 1:]
    return path


@st.composite
def requests(draw, operations):
    method, path, props = draw(st.sampled_from(operations))
    keys = st.sampled_from(props) if props else st.text(max_size=10)
    body = draw(st.one_of(JSON_VALUES, st.dictionaries(keys, JSON_VALUES, max_size=len(props) or 3)))
    headers = {}
    if draw(st.booleans()):
        printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(str.strip).filter(bool)
        headers["X-Filter"] = draw(st.one_of(printable, JSON_VALUES.map(json.dumps)))
    query = draw(st.dictionaries(st.sampled_from(["page", "page_size", "x"]), st.text(max_size=6), max_size=2))
    return method, _fill(path, draw), body, headers, query


def test_fuzzing_every_operation_never_gives_a_500(api_server, http):
    schema = httpx.get(f"{api_server.base()}/openapi.json").json()
    operations = _operations(schema)
    assert len(operations) >= 25  # every route is published

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(requests(operations))
    def check(request):
        method, path, body, headers, query = request
        response = http.request(method, path, json=body, headers=headers, params=query)
        assert response.status_code < 500, (method, path, body, headers, query, response.text)
        if response.status_code >= 400:
            assert_linode_error(response, response.status_code)
        elif response.status_code != 204:
            assert isinstance(response.json(), dict)

    check()
