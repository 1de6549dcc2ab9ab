"""The account's invoices, invoice items, payments and promo codes (Linode's shapes).
Payments are recorded by operators (`gpucloud billing payment`): this product processes no
cards."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Request

from gpucloud.api import billing_bodies, billing_views
from gpucloud.api import billing_schemas as S
from gpucloud.api.auth import scope
from gpucloud.api.filters import Filterable
from gpucloud.api.listing import ListRequest, ObjectId, list_request, respond
from gpucloud.api.routing import LinodeRoute
from gpucloud.errors import NotFound
from gpucloud.services import billing, promotions, trials
from gpucloud.services.tokens import Identity

router = APIRouter(route_class=LinodeRoute)

INVOICE_FIELDS = Filterable.of("id", "date", "label", "subtotal", "tax", "total")
ITEM_FIELDS = Filterable.of("label", "type", "amount", "quantity", "unit_price", "from", "to", "region", "tax",
                            "total")
PAYMENT_FIELDS = Filterable.of("id", "date", "usd")
NOTIFICATION_FIELDS = Filterable.of("type", "severity", "label", "when", "until")
READ = Depends(scope("account", "read_only"))
WRITE = Depends(scope("account", "read_write"))


@router.get("/account/invoices", tags=["account"], summary="List invoices", response_model=S.InvoicePage,
            description="One invoice per closed calendar month with usage, oldest first.")
def list_invoices(request: Request, who: Identity = READ, req: ListRequest = Depends(list_request)) -> dict:
    found = billing.invoices(request.app.state.db, who.account_id)
    return respond([billing_views.invoice(i) for i in found], req, INVOICE_FIELDS)


@router.get("/account/invoices/{invoice_id}", tags=["account"], summary="View an invoice",
            response_model=S.Invoice)
def get_invoice(invoice_id: ObjectId, request: Request, who: Identity = READ) -> dict:
    return billing_views.invoice(billing.invoice(request.app.state.db, who.account_id, invoice_id))


@router.get("/account/invoices/{invoice_id}/items", tags=["account"], summary="List invoice items",
            response_model=S.InvoiceItemPage,
            description="Per instance and plan (hourly), then promotion credit (negative); they sum to the total.")
def list_invoice_items(invoice_id: ObjectId, request: Request, who: Identity = READ,
                       req: ListRequest = Depends(list_request)) -> dict:
    items = billing.invoice_items(request.app.state.db, who.account_id, invoice_id)
    return respond([billing_views.invoice_item(i) for i in items], req, ITEM_FIELDS)


@router.get("/account/payments", tags=["account"], summary="List payments", response_model=S.PaymentPage,
            description="Payments operators recorded; no card processing in this product.")
def list_payments(request: Request, who: Identity = READ, req: ListRequest = Depends(list_request)) -> dict:
    found = billing.payments(request.app.state.db, who.account_id)
    return respond([billing_views.payment(p) for p in found], req, PAYMENT_FIELDS)


@router.get("/account/payments/{payment_id}", tags=["account"], summary="View a payment",
            response_model=S.Payment)
def get_payment(payment_id: ObjectId, request: Request, who: Identity = READ) -> dict:
    found = next((p for p in billing.payments(request.app.state.db, who.account_id) if p.id == payment_id), None)
    if found is None:
        raise NotFound()
    return billing_views.payment(found)


@router.post("/account/promo-codes", tags=["account"], summary="Add a promo code", response_model=S.Promotion,
             description="Credit for the usage the code covers, from now for the code's duration; one "
                         "redemption per account and code.")
def add_promo_code(request: Request, body: billing_bodies.PromoCodeAdd = Body(...), who: Identity = WRITE) -> dict:
    granted = promotions.redeem(request.app.state.db, who.account_id, body.promo_code)
    return billing_views.active_promotion(billing.fresh(granted))


@router.get("/account/notifications", tags=["account"], summary="List notifications",
            response_model=S.NotificationPage,
            description="The account's current notices: its GPU trial (requested, started, ending in 2 days, "
                        "ending tomorrow, ended).")
def list_notifications(request: Request, who: Identity = READ, req: ListRequest = Depends(list_request)) -> dict:
    found = trials.notices(request.app.state.db, who.account_id)
    return respond([billing_views.notification(n) for n in found], req, NOTIFICATION_FIELDS)


@router.get("/account/gpu-trial", tags=["account"], summary="View the GPU trial (gpucloud extension)",
            response_model=S.GpuTrial,
            description="The account's latest one-week GPU trial request: status none, pending, active, declined "
                        "or ended; reason is the operator's when declined, else yours.")
def get_gpu_trial(request: Request, who: Identity = READ) -> dict:
    return billing_views.gpu_trial(trials.latest(request.app.state.db, who.account_id))


@router.post("/account/gpu-trial", tags=["account"], summary="Request the GPU trial (gpucloud extension)",
             response_model=S.GpuTrial,
             description="Seven days of GPU plans with their usage covered by credit, once approved. 400 while "
                         "a request is pending, active or ended; a declined one may be asked again.")
def request_gpu_trial(request: Request, body: billing_bodies.GpuTrialRequest = Body(...),
                      who: Identity = WRITE) -> dict:
    state = request.app.state
    trial = trials.request(state.db, state.settings, who.account_id, body.reason)
    state.flags.refresh()  # an auto-approved trial opens GPU plans in this process at once
    return billing_views.gpu_trial(trial)


@router.get("/account/transfer", tags=["account"], summary="View the account's network transfer pool",
            response_model=S.AccountTransfer)
def get_transfer(request: Request, who: Identity = READ) -> dict:
    return billing.account_transfer(request.app.state.db, who.account_id)
