"""The SSH keys of the caller's profile (`/profile/sshkeys`). Creating an instance with
`authorized_users` gives its root account the keys of those users."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from gpucloud.api import bodies, schemas, views
from gpucloud.api.auth import scope
from gpucloud.api.filters import Filterable
from gpucloud.api.listing import ListRequest, ObjectId, list_request, respond
from gpucloud.api.routing import LinodeRoute
from gpucloud.services import sshkeys
from gpucloud.services.tokens import Identity

router = APIRouter(tags=["profile"], route_class=LinodeRoute)

read = scope("account", "read_only")  # Linode's scopes for /profile/sshkeys
write = scope("account", "read_write")

KEY_FIELDS = Filterable.of("id", "label", "created", "ssh_key")


@router.get("/profile/sshkeys", summary="List SSH keys", response_model=schemas.SshKeyPage)
def list_keys(request: Request, who: Identity = Depends(read), req: ListRequest = Depends(list_request)) -> dict:
    return respond([views.ssh_key(k) for k in sshkeys.list_keys(request.app.state.db, who.user_id)], req,
                   KEY_FIELDS)


@router.post("/profile/sshkeys", summary="Add an SSH key", response_model=schemas.SshKey)
def add_key(body: bodies.SshKeyCreate, request: Request, who: Identity = Depends(write)) -> dict:
    return views.ssh_key(sshkeys.add_key(request.app.state.db, who.user_id, body.ssh_key, body.label))


@router.get("/profile/sshkeys/{key_id}", summary="View an SSH key", response_model=schemas.SshKey)
def get_key(key_id: ObjectId, request: Request, who: Identity = Depends(read)) -> dict:
    return views.ssh_key(sshkeys.get_key(request.app.state.db, who.user_id, key_id))


@router.put("/profile/sshkeys/{key_id}", summary="Rename an SSH key", response_model=schemas.SshKey,
            description="Only the label changes; the key itself cannot.")
def relabel_key(key_id: ObjectId, body: bodies.SshKeyUpdate, request: Request, who: Identity = Depends(write)) -> dict:
    db = request.app.state.db
    if body.label is None:
        return views.ssh_key(sshkeys.get_key(db, who.user_id, key_id))
    return views.ssh_key(sshkeys.relabel_key(db, who.user_id, key_id, body.label))


@router.delete("/profile/sshkeys/{key_id}", summary="Delete an SSH key",
               description="Guests that already hold the key keep it.")
def delete_key(key_id: ObjectId, request: Request, who: Identity = Depends(write)) -> dict:
    sshkeys.delete_key(request.app.state.db, who.user_id, key_id)
    return {}
