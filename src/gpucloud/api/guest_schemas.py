"""What the stats and transfer routes answer, as pydantic models: they document the responses
in /v4/openapi.json (the fuzz test checks every answer against them); the routes build plain
JSON and these never serialise it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

Series = list[list[float]]  # [[milliseconds since the epoch, value], ...]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class IoSeries(_Shape):
    io: Series = Field(description="Disk requests per second.")
    swap: Series


class NetSeries(_Shape):
    in_: Series = Field(alias="in", description="Bits per second received.")
    out: Series = Field(description="Bits per second sent.")
    private_in: Series
    private_out: Series


class StatsData(_Shape):
    cpu: Series = Field(description="Percent; 100 per vCPU.")
    io: IoSeries
    netv4: NetSeries
    netv6: NetSeries


class InstanceStats(_Shape):
    data: StatsData
    title: str


class InstanceTransfer(_Shape):
    used: int = Field(description="Bytes sent this month.")
    quota: int = Field(description="The plan's monthly transfer, GB.")
    billable: int = Field(description="GB over the quota.")


class TransferMonth(_Shape):
    bytes_in: int
    bytes_out: int
    bytes_total: int
