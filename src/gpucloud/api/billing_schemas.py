"""What billing's routes answer, as pydantic models (see `api.schemas`): they document the
responses in /v4/openapi.json, and the fuzz test checks every answer against them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gpucloud.api.schemas import Page, Shape


class TaxLine(Shape):
    name: str
    tax: float


class Invoice(Shape):
    id: int
    date: str
    label: str
    subtotal: float
    tax: float
    total: float
    billing_source: Literal["linode"]
    tax_summary: list[TaxLine]


class InvoicePage(Page):
    data: list[Invoice]


class InvoiceItem(Shape):
    label: str
    type: Literal["hourly", "promotion"]
    amount: float
    quantity: int | None
    unit_price: str | None
    from_: str | None = Field(alias="from")
    to: str | None
    region: str | None
    tax: float
    total: float


class InvoiceItemPage(Page):
    data: list[InvoiceItem]


class Payment(Shape):
    id: int
    date: str
    usd: int | float


class PaymentPage(Page):
    data: list[Payment]


class Promotion(Shape):
    summary: str
    description: str
    credit_monthly_cap: str
    credit_remaining: str
    this_month_credit_remaining: str
    expire_dt: str | None
    image_url: str
    service_type: Literal["all", "linode"]


class Notification(Shape):
    entity: None
    label: str
    message: str
    body: None
    type: Literal["notice", "promotion"]
    severity: Literal["minor", "major", "critical"]
    when: str | None
    until: str | None


class NotificationPage(Page):
    data: list[Notification]


class GpuTrial(Shape):
    status: Literal["none", "pending", "active", "declined", "ended"]
    requested: str | None
    starts: str | None
    ends: str | None
    reason: str | None


class AccountTransfer(Shape):
    used: int = Field(description="GB the account's instances sent this month (rounded up).")
    quota: int = Field(description="GB: the monthly transfer of every plan an instance used this month.")
    billable: int = Field(description="GB over the quota.")
