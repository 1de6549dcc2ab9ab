"""Request bodies of billing's routes (see `api.bodies` for the rules they follow)."""

from __future__ import annotations

from pydantic import Field

from gpucloud.api.bodies import Body


class PromoCodeAdd(Body):
    promo_code: str = Field(min_length=1, max_length=64, description="The code an operator gave you.")


class GpuTrialRequest(Body):
    reason: str = Field(min_length=1, max_length=1000,
                        description="What you would like to try GPUs for; operators read it.")
