"""linode-cli 5.69, unchanged, rebuilding a Linode, rescuing it, resetting its root password and
reading its transfer: the commands issue 13 found answering a bare 404."""

from __future__ import annotations

import json
import time


def wait_for(api_server, token: str, instance_id: int, status: str, timeout: float = 60) -> None:
    with api_server.http(token) as http:
        deadline = time.monotonic() + timeout
        while (now := http.get(f"/linode/instances/{instance_id}").json()["status"]) != status:
            assert time.monotonic() < deadline, f"still {now}, not {status}"
            time.sleep(0.2)


def test_rebuild_rescue_password_and_transfer(cli, api_server):
    code, out, err = cli("linodes", "create", "--type", "g6-nanode-1", "--region", "us-east", "--image",
                         "linode/debian12", "--root_pass", "a-Long-passw0rd-cli-1", "--label", "cli-guest", "--json")
    assert code == 0, err
    (inst,) = json.loads(out)
    wait_for(api_server, cli.token, inst["id"], "running")

    code, out, err = cli("linodes", "rebuild", str(inst["id"]), "--image", "linode/ubuntu24.04", "--root_pass",
                         "an0ther-Long-passw0rd-cli", "--json")
    assert code == 0, err
    (rebuilt,) = json.loads(out)
    assert rebuilt["status"] == "rebuilding" and rebuilt["image"] == "linode/ubuntu24.04"
    assert rebuilt["ipv4"] == inst["ipv4"]
    wait_for(api_server, cli.token, inst["id"], "running")

    code, _, err = cli("linodes", "rescue", str(inst["id"]))
    assert code == 0, err
    wait_for(api_server, cli.token, inst["id"], "running")

    code, _, err = cli("linodes", "linode-reset-password", str(inst["id"]), "--root_pass", "a-Third-passw0rd-cli")
    assert code == 2 and "Cannot reset the root password of this Linode while it is running" in err
    assert cli("linodes", "shutdown", str(inst["id"]))[0] == 0
    wait_for(api_server, cli.token, inst["id"], "offline")
    code, _, err = cli("linodes", "linode-reset-password", str(inst["id"]), "--root_pass", "a-Third-passw0rd-cli")
    assert code == 0, err

    code, out, err = cli("linodes", "transfer-view", str(inst["id"]), "--json")
    assert code == 0, err
    (transfer,) = json.loads(out)
    assert transfer["quota"] == 1000 and transfer["billable"] == 0 and transfer["used"] >= 0
