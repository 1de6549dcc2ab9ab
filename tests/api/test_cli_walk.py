"""Every linode-cli 5.69 command under linodes, profile, account, regions, images, tags, events
and sshkeys, run against the live server with real ids: each either is served (it works, or
answers a Linode error of its own such as a 400 for missing fields) or answers a reason
naming what is not offered here. Never a bare `Not found` for a route we lack, never a 5xx.

linode-cli's own spec lists the commands, so a command a newer spec adds is walked too. They
run in one process (tests/api/cli_walk.py): about 150 commands in seconds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from starlette.routing import Match

from gpucloud.api.unoffered import SUFFIX, route_reason
from tests.factories import ssh_public_key

GROUPS = ("linodes", "profile", "account", "regions", "images", "tags", "events", "sshkeys")
GPU = "g1-gpu-rtx6000-1"
MUST_WORK = {("linodes", a) for a in ("list", "view", "types", "type-view", "ips-list", "configs-list", "config-view",
                                      "disks-list", "disk-view", "update", "transfer-view")} | {
    ("regions", "list"), ("regions", "view"), ("regions", "list-avail"), ("regions", "view-avail"),
    ("images", "list"), ("images", "view"), ("tags", "list"), ("tags", "get-tagged-objects"), ("tags", "delete"),
    ("events", "list"), ("events", "view"), ("events", "mark-seen"), ("sshkeys", "list"), ("sshkeys", "view"),
    ("sshkeys", "delete"), ("profile", "view"), ("profile", "tokens-list"), ("profile", "token-view"),
    ("profile", "token-delete"), ("account", "view"), ("account", "settings"), ("account", "settings-update"),
    ("account", "notifications-list"), ("account", "invoices-list"), ("account", "payments-list"),
    ("linodes", "delete")}


def _walk(env: dict, out: Path, commands: list[list[str]] | None = None) -> list:
    args = [sys.executable, "-m", "tests.api.cli_walk", str(out)] + (["--ops", *GROUPS] if commands is None else [])
    subprocess.run(args, input=json.dumps(commands or []), env=env, capture_output=True, text=True, timeout=300,
                   cwd=Path(__file__).parents[2], check=True)
    return json.loads(out.read_text())


def _served(app, method: str, path: str) -> bool:
    scope = {"type": "http", "path": f"/v4{path}", "method": method, "root_path": ""}
    return any(route.matches(scope)[0] == Match.FULL for route in app.router.routes)


def test_every_cli_command_works_or_names_what_is_not_offered(api_server, tmp_path):
    alice = api_server.customer()
    http = api_server.http(alice.token)
    inst = http.post("/linode/instances", json={"type": GPU, "region": "us-east", "label": "walk-1",
                                                "booted": False, "tags": ["walk"]}).json()
    key = http.post("/profile/sshkeys", json={"ssh_key": ssh_public_key(), "label": "walk"}).json()
    spare = http.post("/profile/tokens", json={"label": "spare"}).json()
    event = http.get("/account/events").json()["data"][0]
    ids = {"linodeId": inst["id"], "configId": inst["id"], "diskId": inst["id"], "address": inst["ipv4"][0],
           "sshKeyId": key["id"], "tagLabel": "walk", "eventId": event["id"], "regionId": "us-east",
           "typeId": GPU, "imageId": "linode/debian12", "tokenId": spare["id"]}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "LINODE_CLI_TOKEN": alice.token,
           "LINODE_CLI_API_HOST": api_server.host_port, "LINODE_CLI_API_SCHEME": "http",
           "LINODE_CLI_CONFIG": str(tmp_path / "linode-cli.ini"), "LINODE_CLI_SUPPRESS_VERSION_WARNING": "1",
           "PYTHONPATH": os.pathsep.join(sys.path)}

    ops = _walk(env, tmp_path / "ops.json")
    assert len(ops) > 120 and {o[0] for o in ops} == set(GROUPS)
    # deletes last (the instance last of all), so that every other command finds its object
    ops.sort(key=lambda o: (o[2] == "DELETE", o[:2] == ["linodes", "delete"]))
    commands, paths = [], []
    for group, action, method, url in ops:
        params = re.findall(r"{(\w+)}", url)
        values = [str(ids.get(p, 1)) for p in params]
        commands.append([group, action, *values, "--json"])
        path = url
        for p, v in zip(params, values, strict=True):
            path = path.replace(f"{{{p}}}", v)
        paths.append((method, path))

    failures = []
    for (group, action, method, url), (_, path), result in zip(ops, paths, _walk(env, tmp_path / "results.json", commands), strict=True):
        status = re.search(r"Request failed: (\d+)", result["stderr"])
        code = int(status.group(1)) if status else None
        what = f"{group} {action} ({method} {url}): exit {result['code']}, {result['stderr'].strip()[-300:]!r}"
        if result["code"] == 99 or (code is not None and code >= 500):
            failures.append(f"crashed or 5xx: {what}")
        elif _served(api_server.app, method, path) and route_reason(method, f"/v4{path}") is None:
            if (group, action) in MUST_WORK and result["code"] != 0:
                failures.append(f"should work: {what}")
        elif SUFFIX not in result["stderr"]:
            failures.append(f"not served and not named: {what}")
    assert not failures, "\n".join(failures)
