"""What the newer routes answer, as pydantic models: they document the responses in
/v4/openapi.json (the fuzz test checks every answer against them). The routes still build
plain JSON in views.py; these models are never used to serialise."""

from __future__ import annotations

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
