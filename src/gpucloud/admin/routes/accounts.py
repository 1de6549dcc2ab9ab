"""Accounts: search, the account page, staff status, and the one-click GPU boot."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from gpucloud.admin.actions import perform, refuse, required
from gpucloud.admin.rendering import page
from gpucloud.admin.session import Viewer, changer, viewer
from gpucloud.catalog import load_catalog
from gpucloud.domain.catalog import GPU_CAPABILITY
from gpucloud.errors import GpucloudError
from gpucloud.services import account_admin, audit_trail, instance_admin, sshkeys
from gpucloud.services.capacity import capacity

router = APIRouter()

DEFAULT_IMAGE = "linode/ubuntu24.04"


@router.get("/accounts")
def account_list(request: Request, q: str = "", _: Viewer = Depends(viewer)) -> Response:
    found = account_admin.search(request.app.state.admin.db, q)
    return page(request, "accounts.html", {"nav": "accounts", "accounts": found, "q": q})


@router.get("/accounts/{ref}")
def account_page(request: Request, ref: str, _: Viewer = Depends(viewer)) -> Response:
    return _account_page(request, ref)


def _account_page(request: Request, ref: str, booted: instance_admin.Booted | None = None,
                  form: dict | None = None, refused: str = "", status: int = 200) -> Response:
    """`form`: what the operator chose in the boot form (kept after a refused boot)."""
    admin = request.app.state.admin
    account = account_admin.overview(admin.db, ref)
    catalog = load_catalog()
    sellable: dict[tuple[str, str], int] = {}
    for row in capacity(admin.db, admin.settings):
        for plan, n in row["sellable"].items():
            sellable[(row["region"], plan)] = sellable.get((row["region"], plan), 0) + n
    regions = [r for r in catalog.regions if GPU_CAPABILITY in r.capabilities]
    plans = [p for p in catalog.plans if p.is_gpu]
    return page(request, "account.html", {
        "nav": "accounts", "account": account, "booted": booted,
        "p": instance_admin.progress(admin.db, booted.instance_id) if booted else None,
        "plans": plans, "regions": regions,
        "sellable_in": {p.id: [r.id for r in regions if sellable.get((r.id, p.id))] for p in plans},
        "images": catalog.images, "default_image": DEFAULT_IMAGE, "sellable": sellable,
        "form": form or {"plan": "", "region": "", "image": DEFAULT_IMAGE, "label": "", "ssh_users": []},
        "refused": refused, "ssh_keys": sshkeys.key_labels_by_username(admin.db, account["id"]),
        "public_url": admin.settings.resolved_public_url,
        "activity": audit_trail.activity_of_account(admin.db, account["id"], [i["id"] for i in account["instances"]]),
    }, status=status)


@router.post("/accounts/{ref}/staff")
def staff(request: Request, ref: str, staff: str = Form(""), why: str = Form(""),
          who: Viewer = Depends(changer)) -> Response:
    back = f"/accounts/{ref}"
    if staff not in ("1", "0"):
        return refuse(request, back, "Choose staff or customer.")
    if problem := required(why, "why"):
        return refuse(request, back, problem)

    def change() -> str:
        changed = account_admin.set_staff(request.app.state.admin.db, ref, staff == "1", why=why, actor=who.actor)
        now = "staff" if staff == "1" else "a customer account"
        return f"Account {ref} is now {now}." if changed else f"Account {ref} already was {now}."

    return perform(request, back, change)


@router.post("/accounts/{ref}/boot")
def boot(request: Request, ref: str, plan: str = Form(""), region: str = Form(""), image: str = Form(""),
         label: str = Form(""), ssh_users: list[str] = Form([]), who: Viewer = Depends(changer)) -> Response:
    """Creates the instance and answers with the account page showing its progress (and its
    root password, once): not a redirect, so the password is never stored to be shown later."""
    admin = request.app.state.admin
    try:
        booted = instance_admin.boot_for_account(admin.db, admin.settings, ref, plan=plan, region=region,
                                                 image=image or None, label=label.strip() or None,
                                                 actor=who.actor, ssh_users=tuple(ssh_users))
    except GpucloudError as exc:  # the form keeps what was chosen, so the operator changes one thing
        return _account_page(request, ref, form={"plan": plan, "region": region, "image": image, "label": label,
                                                 "ssh_users": ssh_users},
                             refused=f"Nothing was created: {exc.reason}", status=400)
    return _account_page(request, ref, booted)
