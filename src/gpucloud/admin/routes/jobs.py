"""Jobs: queue depth, running and failed jobs, and the operator's retry and cancel."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from gpucloud.admin.actions import perform
from gpucloud.admin.rendering import page
from gpucloud.admin.session import Viewer, changer, viewer
from gpucloud.jobs.worker import default_periodic
from gpucloud.services import job_board

router = APIRouter()


@router.get("/jobs")
def jobs_page(request: Request, _: Viewer = Depends(viewer)) -> Response:
    admin = request.app.state.admin
    periodic = tuple(p.kind for p in default_periodic(admin.settings))
    return page(request, "jobs.html", {"nav": "jobs", "board": job_board.board(admin.db, periodic)})


@router.post("/jobs/{job_id}/retry")
def retry(request: Request, job_id: int, why: str = Form(""), who: Viewer = Depends(changer)) -> Response:
    def change() -> str:
        job_board.retry_job(request.app.state.admin.db, job_id, actor=who.actor, why=why.strip())
        return f"Job {job_id} is queued again."

    return perform(request, "/jobs", change)


@router.post("/jobs/{job_id}/cancel")
def cancel(request: Request, job_id: int, why: str = Form(""), who: Viewer = Depends(changer)) -> Response:
    def change() -> str:
        job_board.cancel_job(request.app.state.admin.db, job_id, actor=who.actor, why=why.strip())
        return f"Job {job_id} is cancelled."

    return perform(request, "/jobs", change)
