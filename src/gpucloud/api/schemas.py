"""What the newer routes answer, as pydantic models: they document the responses in
/v4/openapi.json (the fuzz test checks every answer against them). The routes still build
plain JSON in views.py; these models are never used to serialise."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(Shape):
    page: int
    pages: int
    results: int


class SshKey(Shape):
    id: int
    label: str
    ssh_key: str
    created: str


class SshKeyPage(Page):
    data: list[SshKey]


class Availability(Shape):
    region: str
    plan: str
    available: bool


class AvailabilityPage(Page):
    data: list[Availability]


class Tag(Shape):
    label: str


class TagPage(Page):
    data: list[Tag]


class TaggedObject(Shape):
    type: Literal["linode"]
    data: dict[str, Any]  # the instance, as GET /linode/instances/{id} shows it


class TaggedObjectPage(Page):
    data: list[TaggedObject]


class AccountSettings(Shape):
    backups_enabled: bool
    interfaces_for_new_linodes: str
    longview_subscription: str | None
    maintenance_policy: str
    managed: bool
    network_helper: bool
    object_storage: str
    tfa_enforced: bool
