"""Account, profile, personal access tokens and the event feed, through linode_api4."""

from datetime import datetime, timedelta

import httpx
import pytest
from linode_api4 import ApiError, Event

from gpucloud.store import events as event_store


def test_profile_account_and_users(any_api_server):
    alice = any_api_server.customer()
    client = any_api_server.client(alice.token)
    profile = client.profile()
    assert (profile.username, profile.email, profile.restricted) == (alice.username, alice.email, False)
    account = client.account()
    assert account.email == alice.email and "GPU Linodes" in account.capabilities
    datetime.strptime(account.active_since, "%Y-%m-%dT%H:%M:%S")  # Linode's format, no zone
    assert [u.username for u in client.account.users()] == [alice.username]
    grants = any_api_server.http(alice.token).get("/profile/grants")
    assert grants.status_code == 204 and grants.content == b""


def test_tokens_are_shown_once_narrowed_and_revocable(any_api_server):
    alice = any_api_server.customer(scopes="linodes:read_write events:read_only")
    client = any_api_server.client(alice.token)
    expiry = (datetime.utcnow() + timedelta(days=30)).replace(microsecond=0)
    new = client.profile.token_create(label="ci", scopes="linodes:read_only", expiry=expiry)
    secret = new.token
    assert len(secret) == 64 and new.scopes == "linodes:read_only" and new.expiry == expiry
    listed = {t.id: t for t in client.profile.tokens()}
    assert listed[new.id].token == secret[:16]  # the secret is never shown again
    same = client.profile.token_create(label="same")  # '*' or nothing: the acting token's scopes
    assert same.scopes == "events:read_only linodes:read_write"
    with pytest.raises(ApiError) as err:
        client.profile.token_create(scopes="account:read_write")
    assert err.value.status == 400 and "account" in str(err.value)
    new.label = "renamed"
    new.save()
    assert any_api_server.client(secret).profile().username == alice.username  # the new token works
    assert {t.label for t in client.profile.tokens()} >= {"renamed", "same"}
    new.delete()
    assert new.id not in {t.id for t in client.profile.tokens()}
    with pytest.raises(ApiError) as err:
        any_api_server.client(secret).profile()
    assert err.value.status == 401


def test_a_token_cannot_revoke_a_more_powerful_one(api_server):
    alice = api_server.customer()
    weak = api_server.token(alice, scopes="events:read_only")
    full_id = api_server.http(alice.token).get("/profile/tokens").json()["data"][0]["id"]
    refused = api_server.http(weak).delete(f"/profile/tokens/{full_id}")
    assert refused.status_code == 403 and refused.json() == {"errors": [{"reason": "Unauthorized"}]}
    weak_id = max(t["id"] for t in api_server.http(weak).get("/profile/tokens").json()["data"])
    assert api_server.http(weak).delete(f"/profile/tokens/{weak_id}").json() == {}  # itself: fine
    assert api_server.http(weak).get("/profile").status_code == 401


def _event(server, account_id, action, entity_id, status="finished", percent=100):
    with server.db.write() as s:
        event_id = event_store.create(s, action=action, account_id=account_id, entity_id=entity_id,
                                      entity_label=f"gpu-{entity_id}", username="someone")
        if status == "finished":
            event_store.mark_finished(s, event_id)
        elif status == "started":
            event_store.mark_started(s, event_id)
            event_store.advance(s, event_id, percent)
        return event_id


def test_events_newest_first_filtered_and_seen(any_api_server):
    alice = any_api_server.customer()
    created = _event(any_api_server, alice.account_id, "linode_create", 7)
    booted = _event(any_api_server, alice.account_id, "linode_boot", 7, status="started", percent=40)
    other = _event(any_api_server, alice.account_id, "linode_create", 8)
    client = any_api_server.client(alice.token)

    events = client.account.events()
    assert [e.id for e in events] == [other, booted, created]
    boot = events[1]
    assert (boot.action, boot.status, boot.percent_complete, boot.seen) == ("linode_boot", "started", 40, False)
    assert boot.entity.id == 7 and boot.entity.type == "linode"
    assert isinstance(boot.created, datetime)
    raw = any_api_server.http(alice.token).get(f"/account/events/{booted}").json()
    assert raw["entity"] == {"id": 7, "label": "gpu-7", "type": "linode", "url": "/v4/linode/instances/7"}

    # linode_api4's pollers, with the X-Filters they send
    poller = client.polling.event_poller_create("linode", "linode_boot", entity_id=7)
    rebooted = _event(any_api_server, alice.account_id, "linode_boot", 7)
    assert poller.wait_for_next_event_finished(timeout=10, interval=1).id == rebooted
    client.polling.wait_for_entity_free("linode", 8, timeout=5, interval=1)
    poller_filter = ('{"+order":"asc","+order_by":"created","entity.id":7,"entity.type":"linode",'
                     '"action":"linode_boot"}')
    polled = any_api_server.http(alice.token).get("/account/events", headers={"X-Filter": poller_filter})
    assert [e["id"] for e in polled.json()["data"]] == [booted, rebooted]
    listing = client.load(Event, "")  # GET /account/events/, as linode_api4's own tests read the feed
    assert [e["id"] for e in listing._raw_json["data"]] == [rebooted, other, booted, created]

    Event(client, booted).mark_seen()
    seen = {e.id: e.seen for e in client.account.events()}
    assert seen == {created: True, booted: True, other: False, rebooted: False}


def test_event_lists_page_stably(api_server):
    alice = api_server.customer()
    made = [_event(api_server, alice.account_id, "linode_create", n) for n in range(30)]
    client = api_server.client(alice.token)
    first = api_server.http(alice.token).get("/account/events?page=2&page_size=25").json()
    assert (first["page"], first["pages"], first["results"], len(first["data"])) == (2, 2, 30, 5)
    paged = [e.id for e in api_server.client(alice.token).account.events()]
    assert paged == sorted(made, reverse=True)
    small_pages = type(client)(alice.token, base_url=api_server.base(), page_size=25, retry=False)
    assert [e.id for e in small_pages.account.events()] == paged  # lazily loads page 2


def test_another_accounts_events_and_tokens_are_not_found(any_api_server):
    alice, mallory = any_api_server.customer(), any_api_server.customer()
    event_id = _event(any_api_server, alice.account_id, "linode_create", 1)
    token_id = any_api_server.http(alice.token).get("/profile/tokens").json()["data"][0]["id"]
    http = any_api_server.http(mallory.token)
    for method, path in (("GET", f"/account/events/{event_id}"), ("POST", f"/account/events/{event_id}/seen"),
                         ("GET", f"/profile/tokens/{token_id}"), ("PUT", f"/profile/tokens/{token_id}"),
                         ("DELETE", f"/profile/tokens/{token_id}")):
        response = http.request(method, path, json={} if method == "PUT" else None)
        assert response.status_code == 404, (method, path)
        assert response.json() == {"errors": [{"reason": "Not found"}]}
    assert http.get("/account/events").json()["results"] == 0
    assert httpx.get(f"{any_api_server.base()}/account/events/{event_id}",
                     headers={"Authorization": f"Bearer {alice.token}"}).status_code == 200
