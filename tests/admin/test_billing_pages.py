"""The admin Trials page (approve and decline with a reason, audited), the billing panel
of the account page and revenue on the dashboard, on a live `gpucloud serve --demo`."""

from __future__ import annotations

from gpucloud.config import load_settings
from gpucloud.services import accounts, trials
from gpucloud.store.db import Database
from gpucloud.store.tables import GpuTrial
from tests.admin.conftest import SUPPORT_PASSWORD, SUPPORT_USER, admin_client, csrf_of


def test_trials_page_approves_and_declines_with_a_reason(server):
    db = Database(f"sqlite:///{server.data_dir / 'gpucloud.sqlite'}")
    settings = load_settings({"data_dir": str(server.data_dir)}, environ={})
    try:
        one = accounts.create_account(db, "lab@uni.example")
        two = accounts.create_account(db, "anon@mail.example")
        first = trials.request(db, settings, one.id, "teaching a CUDA class")
        second = trials.request(db, settings, two.id, "free GPUs")
        client = admin_client(server)
        listing = client.get("/admin/trials?status=pending")
        assert listing.status_code == 200 and "teaching a CUDA class" in listing.text and 'data-nav="trials"' in listing.text
        token = csrf_of(listing.text)
        refused = client.post(f"/admin/trials/{first.id}/approve", data={"csrf_token": token, "why": ""})
        assert refused.status_code == 303
        with db.read() as s:
            assert s.get(GpuTrial, first.id).status == "pending"
        client.post(f"/admin/trials/{first.id}/approve", data={"csrf_token": token, "why": "university"})
        client.post(f"/admin/trials/{second.id}/decline", data={"csrf_token": token, "why": "use a work e-mail"})
        with db.read() as s:
            assert s.get(GpuTrial, first.id).status == "active"
            assert (s.get(GpuTrial, second.id).status, s.get(GpuTrial, second.id).decision_reason) == (
                "declined", "use a work e-mail")
        account = client.get(f"/admin/accounts/{one.id}")
        assert account.status_code == 200 and "data-billing" in account.text
        assert 'data-trial-status="active"' in account.text and "GPU trial (7 days)" in account.text
        dashboard = client.get("/admin/")
        assert dashboard.status_code == 200 and "data-run-rate" in dashboard.text
        trials.request(db, settings, accounts.create_account(db, "third@uni.example").id, "thesis")
        assert "Approve</button>" in client.get("/admin/trials").text
        support = admin_client(server, SUPPORT_USER, SUPPORT_PASSWORD)  # read-only: sees, cannot decide
        seen = support.get("/admin/trials").text
        assert "thesis" in seen and "Approve</button>" not in seen
    finally:
        db.dispose()


def test_the_demo_has_billing_history(server):
    demo = server.demo()
    assert demo["promo_code"] == "WELCOME-GPU"
    assert "promo code     WELCOME-GPU" in server.log.read_text()
    client = admin_client(server)
    trial_page = client.get("/admin/trials").text
    assert 'data-status="active"' in trial_page and 'data-status="pending"' in trial_page
    customer = client.get("/admin/accounts/customer@example.com").text
    assert customer.count("<tr><td>#") >= 3  # three closed months
