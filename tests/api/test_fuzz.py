"""Schemathesis (pinned in requirements.lock) over every operation /v4/openapi.json
publishes, against a live server on SQLite and on PostgreSQL, as a customer with a real
token and with real ids (instances, tokens, events, types, regions, images) mixed into the
generated ones: zero server errors and zero schema violations (responses conform to the
documented schema, statuses, content types, headers and `Allow`; operations documented as
needing a token refuse to run without one).

The spec is generated from the routes, so a route another stream adds is fuzzed here
without anyone listing it. A fixed seed and a bounded number of examples keep it
reproducible and inside CI's time. Not checked: `positive_data_acceptance`, which expects a
2xx for any schema-valid input; Linode answers 400 for requests that are well-formed but
refused by state ("Linode busy", "Cannot boot this Linode while it is running"), and so do we.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.api.conftest import PG_ADMIN_URL, _migrated, _start
from tests.conftest import make_settings

SEED = 20261130
MAX_EXAMPLES = 8
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance", "negative_data_rejection",
          "missing_required_header", "unsupported_method", "allow_header_conformance", "ignored_auth",
          "use_after_free", "ensure_resource_availability")
PHASES = ("examples", "coverage", "fuzzing", "stateful")


def _server(data_dir: Path, url: str):
    # rate limit off: the fuzzer is one account sending hundreds of requests a second
    settings = make_settings(data_dir, url, sim_boot_seconds=0.2, worker_poll_seconds=0.05, rate_limit_per_minute=0)
    db = _migrated(url)
    return _start(settings, db), db


@pytest.fixture(params=["sqlite", "postgresql"])
def fuzz_server(request, tmp_path_factory) -> Iterator:
    data_dir = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    name = None
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'gpucloud.sqlite'}"
    else:
        name = f"gpucloud_fuzz_{os.getpid()}_{secrets.token_hex(3)}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    server, db = _server(data_dir, url)
    yield server
    server.stop()
    db.dispose()
    if name is not None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _real_ids(server, token: str) -> dict[str, list]:
    """Objects of the customer's own, for the fuzzer to hit besides the ids it invents."""
    with server.http(token) as http:
        instances = [http.post("/linode/instances", json={"type": plan, "region": "us-east", "booted": False}).json()["id"]
                     for plan in ("g1-gpu-rtx6000-1", "g6-nanode-1")]
        tokens = [http.post("/profile/tokens", json={"label": f"spare-{n}"}).json()["id"] for n in range(3)]
        events = [e["id"] for e in http.get("/account/events").json()["data"]]
    return {"instance_id": instances, "config_id": instances, "disk_id": instances, "token_id": tokens,
            "event_id": events, "type_id": ["g1-gpu-rtx6000-1", "g6-nanode-1"], "region_id": ["us-east", "ap-west"],
            "vendor": ["linode"], "name": ["debian12", "ubuntu24.04"]}


def _config(ids: dict[str, list], token: str) -> str:
    """schemathesis.toml: real ids half of the time in every path parameter that names one."""
    lines = [f"seed = {SEED}", "workers = 1", 'suppress-health-check = ["all"]', "",
             "[headers]", f'Authorization = "Bearer {token}"', "",
             "[generation]", f"max-examples = {MAX_EXAMPLES}", 'database = "none"', "",
             "[checks]", "enabled = false"]
    lines += [f"{check}.enabled = true" for check in CHECKS]
    lines += ["", "[phases]", *(f"{phase}.enabled = true" for phase in PHASES), ""]
    for name, values in ids.items():
        quoted = ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in values)
        lines += [f"[dictionaries.{name}]", f"values = [{quoted}]", ""]
    lines += ["[parameters]"] + [f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}' for name in ids]
    return "\n".join(lines) + "\n"


def test_schemathesis_finds_no_server_error_and_no_schema_violation(fuzz_server, tmp_path):
    customer = fuzz_server.customer()
    (tmp_path / "schemathesis.toml").write_text(_config(_real_ids(fuzz_server, customer.token), customer.token))
    schema = httpx.get(f"{fuzz_server.base()}/openapi.json", timeout=60).json()
    operations = {f"{method.upper()} {path}" for path, item in schema["paths"].items() for method in item}
    try:
        run = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file", str(tmp_path / "schemathesis.toml"),
             "--no-color", "run", f"{fuzz_server.base()}/openapi.json", "--report", "junit", "--report-junit-path",
             str(tmp_path / "junit.xml")], capture_output=True, text=True, timeout=1800, cwd=tmp_path)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"schemathesis did not finish in {exc.timeout} s:\n{(exc.stdout or b'')[-6000:]!r}")
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-12000:]
    report = ElementTree.parse(tmp_path / "junit.xml").getroot()
    tested = {case.get("name") for case in report.iter("testcase")}
    assert operations <= tested, sorted(operations - tested)  # every operation (and the stateful run)
    assert not [*report.iter("failure"), *report.iter("error")]
    generated = re.search(r"(\d+) generated", output)
    assert generated and int(generated.group(1)) >= len(operations) * MAX_EXAMPLES, output[-3000:]
    print(f"schemathesis: {len(operations)} operations, {generated.group(1)} test cases, 0 failures; "
          f"{output.strip().splitlines()[-1]}")
