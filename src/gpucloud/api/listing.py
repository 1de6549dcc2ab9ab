"""Linode collections: the list envelope `{"data", "page", "pages", "results"}` over items
filtered and sorted by `X-Filter`.

`page_size` is honoured exactly (linode_api4 asks for later pages with
`page_size=len(first page)` and refuses the list if `pages` or `results` change), and a page
past the end answers the last page. Single-object routes declare no page parameters, so the
`?page=1&page_size=100` linode-cli appends to every GET is ignored there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Header, Path, Query
from pydantic import BeforeValidator

from gpucloud.api import filters


def _digits_only(value: Any) -> Any:
    """`/linode/instances/1.0` or `/+1` name nothing: only plain decimal digits are an id."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("an id is decimal digits")
    return value


# ids in paths: a number the database can hold, written plainly; anything else names nothing (404)
ObjectId = Annotated[int, BeforeValidator(_digits_only), Path(ge=1, le=2**31 - 1)]

DEFAULT_PAGE_SIZE = 100
MIN_PAGE_SIZE, MAX_PAGE_SIZE = 25, 500


@dataclass(frozen=True)
class ListRequest:
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    x_filter: str | None = None

    def query(self, filterable: filters.Filterable) -> filters.ListQuery:
        return filters.parse(self.x_filter, filterable)


async def list_request(  # no I/O: runs on the event loop, not a thread
    page: int = Query(1, ge=1, description="Page number, from 1."),
    page_size: int = Query(DEFAULT_PAGE_SIZE, ge=MIN_PAGE_SIZE, le=MAX_PAGE_SIZE,
                           description="Items per page (25-500)."),
    x_filter: str | None = Header(None, alias="X-Filter",
                                  description='Linode filter JSON, e.g. {"label": {"+contains": "gpu"}}.'),
) -> ListRequest:
    return ListRequest(page, page_size, x_filter)


def envelope(items: list, req: ListRequest) -> dict:
    total = len(items)
    pages = max(1, -(-total // req.page_size))
    page = min(req.page, pages)
    start = (page - 1) * req.page_size
    return {"data": items[start : start + req.page_size], "page": page, "pages": pages, "results": total}


def respond(items: Iterable[dict], req: ListRequest, filterable: filters.Filterable, *,
            default_descending: bool = False) -> dict:
    """Filter, sort and page `items` (already in the collection's default order)."""
    return envelope(req.query(filterable).apply(items, default_descending=default_descending), req)
