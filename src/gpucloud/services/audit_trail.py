"""The audit entries an admin page shows beside the thing it is about."""

from __future__ import annotations

from gpucloud.store import audit_trail as q
from gpucloud.store import events
from gpucloud.store.db import Database


def of_host(db: Database, host_id: int, host_name: str, limit: int = 50) -> list[dict]:
    """The host's own entries and its GPUs' (audited as `name/address`)."""
    with db.read() as s:
        return [_view(e) for e in q.entries_about(s, [("host", str(host_id))], id_prefixes=[("gpu", f"{host_name}/")],
                                                   limit=limit)]


def of_target(db: Database, target_type: str, target_id: str | int, limit: int = 50) -> list[dict]:
    with db.read() as s:
        return [_view(e) for e in q.entries_about(s, [(target_type, str(target_id))], limit=limit)]


def of_account(db: Database, account_id: int, instance_ids: list[int], limit: int = 50) -> list[dict]:
    """The account's entries (staff status) and its instances' (boots by operators)."""
    targets = [("account", str(account_id))] + [("instance", str(i)) for i in instance_ids]
    with db.read() as s:
        return [_view(e) for e in q.entries_about(s, targets, limit=limit)]


def activity_of_account(db: Database, account_id: int, instance_ids: list[int], limit: int = 50) -> list[dict]:
    """What happened to an account, newest first: operators' audited changes and the
    customer's own actions (the events the API records: creates, boots, deletes...)."""
    audited = [{**entry, "source": "operator"} for entry in of_account(db, account_id, instance_ids, limit)]
    with db.read() as s:
        actions = [{"id": e.id, "at": e.created_at, "actor": e.username or "system", "action": e.action,
                    "target_type": e.entity_type, "target_id": f"{e.entity_id} {e.entity_label}".strip(),
                    "status": e.status, "message": e.shown_message, "source": "customer"}
                   for e in events.recent_of_account(s, account_id, limit)]
    return sorted(audited + actions, key=lambda e: e["at"], reverse=True)[:limit]


def _view(e) -> dict:
    return {"id": e.id, "at": e.at, "actor": e.actor, "action": e.action, "target_type": e.target_type,
            "target_id": e.target_id, "before": e.before, "after": e.after, "why": e.why}
