"""The caller's account, profile and personal access tokens, and the account's event feed."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Request, Response

from gpucloud.api import billing_views, bodies, schemas, unoffered, views
from gpucloud.api.auth import identity, scope
from gpucloud.api.filters import Filterable
from gpucloud.api.gating import gpu_access
from gpucloud.api.listing import ListRequest, ObjectId, envelope, list_request, respond
from gpucloud.api.routing import LinodeRoute
from gpucloud.services import account_events, billing, customer, sshkeys, tokens
from gpucloud.services.tokens import Identity

router = APIRouter(route_class=LinodeRoute)

EVENT_FIELDS = Filterable.of("id", "action", "created", "entity.id", "entity.type", "entity.label", "status",
                             "seen", "username", "details.*")
TOKEN_FIELDS = Filterable.of("id", "label", "created", "expiry", "scopes")
USER_FIELDS = Filterable.of("username", "email", "restricted", "user_type")

# --- account ------------------------------------------------------------------------------------


@router.get("/account", tags=["account"], summary="View the account")
def get_account(request: Request, who: Identity = Depends(scope("account", "read_only"))) -> dict:
    account = customer.account_record(request.app.state.db, who.account_id)
    return {**views.account(account, gpus=gpu_access(request, who).types), **_account_money(request, who)}


def _account_money(request: Request, who: Identity) -> dict:
    """balance, balance_uninvoiced and active_promotions, from billing."""
    settings = request.app.state.settings
    return billing_views.account_money(billing.figures(request.app.state.db, who.account_id,
                                                       tax_percent=settings.billing_tax_percent))


@router.get("/account/users", tags=["account"], summary="List the account's users")
def list_users(request: Request, who: Identity = Depends(scope("account", "read_only")),
               req: ListRequest = Depends(list_request)) -> dict:
    db = request.app.state.db
    users = customer.account_users(db, who.account_id)
    labels = sshkeys.key_labels_by_username(db, who.account_id)
    return respond([views.user(u, labels.get(u.username, [])) for u in users], req, USER_FIELDS)


# --- settings ---------------------------------------------------------------------------------------


@router.get("/account/settings", tags=["account"], summary="View account settings",
            response_model=schemas.AccountSettings,
            description="What this cloud does for every account: no backups, legacy configuration interfaces, "
                        "GPU guests powered off and on for maintenance, the Network Helper on.")
def get_settings(_who: Identity = Depends(scope("account", "read_only"))) -> dict:
    return dict(unoffered.ACCOUNT_SETTINGS)


@router.put("/account/settings", tags=["account"], summary="Update account settings",
            response_model=schemas.AccountSettings,
            description="Each field may be sent with the value GET shows (linode_api4's save() sends them "
                        "all); another value asks for a feature not offered here and is a 400 naming the field.")
def update_settings(body: bodies.AccountSettingsUpdate,
                    _who: Identity = Depends(scope("account", "read_write"))) -> dict:
    unoffered.refuse(body, unoffered.SETTINGS_FIELDS)
    return dict(unoffered.ACCOUNT_SETTINGS)


# --- events ---------------------------------------------------------------------------------------


@router.get("/account/events", tags=["account"], summary="List events",
            description="The last 90 days, newest first unless X-Filter orders them.")
@router.get("/account/events/", include_in_schema=False)  # linode_api4's client.load(Event, "")
def list_events(request: Request, who: Identity = Depends(scope("events", "read_only")),
                req: ListRequest = Depends(list_request)) -> dict:
    query = req.query(EVENT_FIELDS)
    narrowed = _event_prefilter(query.equalities)
    found = account_events.list_events(request.app.state.db, who.account_id, **narrowed)
    return envelope(query.apply((views.event(e) for e in found), default_descending=True), req)


@router.get("/account/events/{event_id}", tags=["account"], summary="View an event")
def get_event(event_id: ObjectId, request: Request, who: Identity = Depends(scope("events", "read_only"))) -> dict:
    return views.event(account_events.get_event(request.app.state.db, who.account_id, event_id))


@router.post("/account/events/{event_id}/seen", tags=["account"], summary="Mark events as seen",
             description="Marks this event and every earlier one as seen.")
def mark_seen(event_id: ObjectId, request: Request, who: Identity = Depends(scope("events", "read_write"))) -> dict:
    account_events.mark_seen(request.app.state.db, who.account_id, event_id)
    return {}


def _event_prefilter(equalities: dict) -> dict:
    """Top-level equalities the database can apply first (the full filter still runs after)."""
    out: dict = {}
    entity_id = equalities.get("entity.id")
    if isinstance(entity_id, int) and not isinstance(entity_id, bool):
        out["entity_id"] = entity_id
    elif isinstance(entity_id, str) and entity_id.isdigit():
        out["entity_id"] = int(entity_id)
    for key, name in (("entity.type", "entity_type"), ("action", "action")):
        if isinstance(equalities.get(key), str):
            out[name] = equalities[key]
    return out


# --- profile and tokens -----------------------------------------------------------------------------


@router.get("/profile", tags=["profile"], summary="View the profile")
async def get_profile(who: Identity = Depends(identity)) -> dict:
    return views.profile(who.user_id, who.username, who.user_email)


@router.get("/profile/grants", tags=["profile"], summary="View grants", status_code=204,
            description="Every user is unrestricted: 204, which linode-cli reads as full access.")
async def get_grants(_who: Identity = Depends(identity)) -> Response:
    return Response(status_code=204)


@router.get("/profile/tokens", tags=["profile"], summary="List personal access tokens")
def list_tokens(request: Request, who: Identity = Depends(identity),
                req: ListRequest = Depends(list_request)) -> dict:
    return respond([views.token(t) for t in tokens.list_tokens(request.app.state.db, who)], req, TOKEN_FIELDS)


@router.post("/profile/tokens", tags=["profile"], summary="Create a personal access token",
             description="The token's secret is in this response only; it is stored hashed. Scopes are "
                         "narrowed to the acting token's ('*' or omitted: the same scopes).")
def create_token(request: Request, body: bodies.TokenCreate = Body(default_factory=bodies.TokenCreate),
                 who: Identity = Depends(identity)) -> dict:
    token, secret = tokens.create_token(request.app.state.db, who, label=body.label or "",
                                        scopes=body.scopes or "*", expiry=tokens.parse_expiry(body.expiry))
    return views.token(token, secret=secret)


@router.get("/profile/tokens/{token_id}", tags=["profile"], summary="View a personal access token")
def get_token(token_id: ObjectId, request: Request, who: Identity = Depends(identity)) -> dict:
    return views.token(tokens.get_token(request.app.state.db, who, token_id))


@router.put("/profile/tokens/{token_id}", tags=["profile"], summary="Rename a personal access token")
def update_token(
    token_id: ObjectId, body: bodies.TokenUpdate, request: Request, who: Identity = Depends(identity)
) -> dict:
    if body.label is None:
        return views.token(tokens.get_token(request.app.state.db, who, token_id))
    return views.token(tokens.rename_token(request.app.state.db, who, token_id, body.label))


@router.delete("/profile/tokens/{token_id}", tags=["profile"], summary="Revoke a personal access token",
               description="A token may revoke itself, or a token whose scopes it holds too.")
def revoke_token(token_id: ObjectId, request: Request, who: Identity = Depends(identity)) -> dict:
    tokens.revoke_token(request.app.state.db, who, token_id)
    return {}
