"""`/account/settings`: Linode's fields with what this cloud does; PUT takes those values back
(linode_api4's save() sends them all) and refuses any other, naming the field."""

from __future__ import annotations

import json

import pytest
from linode_api4 import ApiError

SERVED = {"backups_enabled": False, "interfaces_for_new_linodes": "legacy_config_only",
          "longview_subscription": None, "maintenance_policy": "linode/power_off_on", "managed": False,
          "network_helper": True, "object_storage": "disabled", "tfa_enforced": False}


def test_settings_read_and_saved_back(api_server, customer):
    client = api_server.client(customer.token)
    settings = client.account.settings()
    assert (settings.backups_enabled, settings.network_helper, settings.managed) == (False, True, False)
    settings.save()  # sends every mutable field back, unchanged
    settings.backups_enabled = True
    with pytest.raises(ApiError) as err:
        settings.save()
    assert err.value.status == 400 and "Backups are not offered by this cloud" in str(err.value)
    http = api_server.http(customer.token)
    assert http.get("/account/settings").json() == SERVED
    assert http.put("/account/settings", json=SERVED).json() == SERVED


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("network_helper", False, "Turning the Network Helper off is not offered by this cloud"),
    ("maintenance_policy", "linode/migrate", "Live migration (linode/migrate) is not offered by this cloud"),
    ("longview_subscription", "longview-3", "Longview is not offered by this cloud"),
    ("managed", True, "Linode Managed is not offered by this cloud"),
    ("interfaces_for_new_linodes", "linode_only",
     "Linode Interfaces (VPC and VLAN attachments) are not offered by this cloud"),
])
def test_changes_we_do_not_support_are_named(api_server, customer, field, value, reason):
    response = api_server.http(customer.token).put("/account/settings", json={field: value})
    assert (response.status_code, response.json()) == (400, {"errors": [{"field": field, "reason": reason}]})


def test_settings_with_linode_cli(cli):
    code, out, err = cli("account", "settings", "--json")
    assert code == 0 and json.loads(out)[0]["network_helper"] is True, err
    code, out, err = cli("account", "settings-update", "--backups_enabled", "true")
    assert code == 2 and "Backups are not offered by this cloud" in err
