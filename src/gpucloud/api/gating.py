"""What of the GPU catalog a caller may see, decided in this one place.

GPU types and the "GPU Linodes" capability of regions are shown only to accounts the
`gpu-instances` flag (or a region's own `gpu-region-<id>` flag) lets in; anonymous callers
see what is `on` for everyone. Creating, resizing into and booting GPU plans is enforced by
the instance service itself; this only shapes what lists show.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from gpucloud.services.tokens import Identity


@dataclass(frozen=True)
class GpuAccess:
    types: bool  # GPU types are listed
    regions: frozenset[str]  # regions whose "GPU Linodes" capability is shown

    def sees_plan(self, is_gpu: bool) -> bool:
        return self.types or not is_gpu


def gpu_access(request: Request, who: Identity | None) -> GpuAccess:
    flags = request.app.state.flags
    account = who.account if who is not None else None
    regions = frozenset(r.id for r in request.app.state.catalog.regions if flags.gpu_allowed(account, r.id))
    return GpuAccess(types=flags.gpu_types_visible(account), regions=regions)
