"""The services behind the operator pages: an account's activity (customer actions and
operators' changes), the instance filters, the chart's span."""

from __future__ import annotations

from sqlalchemy import select

from gpucloud.services import account_admin, accounts, audit_trail, hosts, instance_admin, password_links, sshkeys
from gpucloud.services.instances import NewInstance, create_instance
from gpucloud.store.accounts import first_user
from gpucloud.store.tables import Instance, PasswordLink
from tests.conftest import make_settings
from tests.factories import ssh_public_key, two_node_host


def test_activity_shows_customer_actions_and_operator_changes(sqlite_db, tmp_path):
    db, settings = sqlite_db, make_settings(tmp_path, sqlite_db.url)
    hosts.register_host(db, settings, name="gpu-1", region="us-east", topology=two_node_host(), driver="sim",
                        profile="t")
    gina = accounts.create_account(db, "gina@example.com", username="gina")
    made = [create_instance(db, settings, gina.id, "gina", NewInstance(type="g6-standard-2", region="us-east"))
            for _ in range(2)]
    account_admin.set_staff(db, gina.id, True, why="employee", actor="admin:ops")

    activity = audit_trail.activity_of_account(db, gina.id, [i.id for i in made])
    assert [(e["source"], e["action"]) for e in activity] == [
        ("operator", "account.staff"), ("customer", "linode_create"), ("customer", "linode_create")]
    assert activity[1]["actor"] == "gina" and activity[1]["target_id"].startswith(str(made[1].id))


def test_instance_filters_by_region_model_status_and_account(sqlite_db, tmp_path):
    db, settings = sqlite_db, make_settings(tmp_path, sqlite_db.url)
    for name, region in (("gpu-1", "us-east"), ("gpu-2", "ap-west")):
        hosts.register_host(db, settings, name=name, region=region, topology=two_node_host(), driver="sim",
                            profile="t")
    hal = accounts.create_account(db, "hal@example.com", username="hal")
    ivy = accounts.create_account(db, "ivy@example.com", username="ivy")
    gpu = create_instance(db, settings, hal.id, "hal", NewInstance(type="g1-gpu-rtx6000-2", region="ap-west"),
                          bypass_flags=True)
    cpu = create_instance(db, settings, ivy.id, "ivy", NewInstance(type="g6-standard-2", region="us-east"))

    def ids(**filters) -> list[int]:
        return [i["id"] for i in instance_admin.search(db, **filters)]

    assert ids() == [cpu.id, gpu.id]
    assert ids(region="ap-west") == [gpu.id] and ids(gpu_model="rtx6000") == [gpu.id] and ids(gpu_model="h100") == []
    assert ids(account="ivy@example.com") == [cpu.id] and ids(account=str(hal.id)) == [gpu.id]
    assert ids(account="nobody@example.com") == [] and ids(status="running") == []
    assert ids(status="provisioning", region="us-east") == [cpu.id]
    [row] = instance_admin.search(db, region="ap-west")
    assert (row["gpu_model"], row["gpu_count"]) == ("rtx6000", 2)


def test_boot_hands_the_password_through_a_link_that_opens_once_and_gives_root_the_users_keys(sqlite_db, tmp_path):
    db, settings = sqlite_db, make_settings(tmp_path, sqlite_db.url)
    hosts.register_host(db, settings, name="gpu-1", region="us-east", topology=two_node_host(), driver="sim",
                        profile="t")
    jo = accounts.create_account(db, "jo@example.com", username="jordan")
    key = ssh_public_key("jo@laptop")
    sshkeys.add_key(db, _user(db, jo.id), key, "laptop")
    booted = instance_admin.boot_for_account(db, settings, jo.email, plan="g1-gpu-rtx6000-1", region="us-east",
                                             image="linode/ubuntu24.04", label=None, actor="admin:ops",
                                             ssh_users=("jordan",))
    assert booted.password_link and booted.password_link.startswith(password_links.PATH)
    token = booted.password_link.removeprefix(password_links.PATH)
    with db.read() as s:
        stored = s.scalars(select(PasswordLink)).one()
        assert booted.root_password not in (stored.sealed or "") and token not in stored.token_hash
        assert s.get(Instance, booted.instance_id).authorized_keys == [key]
    first = password_links.open_link(db, token)
    assert first is not None and first.password == booted.root_password and first.instance_id == booted.instance_id
    again = password_links.open_link(db, token)
    assert again is not None and again.password is None
    assert password_links.open_link(db, "not-a-token") is None


def _user(db, account_id: int) -> int:
    with db.read() as s:
        user = first_user(s, account_id)
        assert user is not None
        return user.id
