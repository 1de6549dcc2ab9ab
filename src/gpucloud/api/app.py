"""The HTTP application: the Linode-compatible public API under /v4 (and /v4beta)."""

from __future__ import annotations

from fastapi import FastAPI

from gpucloud.api import views
from gpucloud.catalog import load_catalog
from gpucloud.config import Settings
from gpucloud.store.db import Database


def create_app(settings: Settings, db: Database) -> FastAPI:
    app = FastAPI(title="gpucloud", version="0.1.0", docs_url=None, redoc_url=None,
                  openapi_url="/v4/openapi.json")
    app.state.settings = settings
    app.state.db = db
    catalog = load_catalog()

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        db.check_reachable()
        return {"status": "ok"}

    for prefix in ("/v4", "/v4beta"):
        @app.get(f"{prefix}/regions", tags=["regions"])
        def regions() -> dict:
            return views.page([views.region(r) for r in catalog.regions])

        @app.get(f"{prefix}/linode/types", tags=["linode"])
        def types() -> dict:
            return views.page([views.plan(p) for p in catalog.plans])

    return app
