"""The audit trail: the awake persona's own entries, and the whole chain for the store's owner.

Audit entries never hold memory content, only events and counts. The persona's page shows its
entries without their chain numbers (as the HTTP API does: gaps in ``seq`` would count what
other personas did); the store page shows the whole chain with hashes and the result of
``verify``.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response

from ..errors import InvalidInputError
from ..model import AuditEntry
from ..session import Session
from .forms import day_bound
from .plumbing import awake, browser, console_of, render
from .security import BrowserSession

router = APIRouter()

PAGE_SIZE = 100


def _filtered(
    entries: list[AuditEntry], action: str, event: str, since: str, until: str, page: str
) -> dict[str, Any]:
    """One page of the entries that pass the filters, newest first, with its pager links."""
    if not page.isdigit() or not 1 <= int(page) <= 1_000_000:
        raise InvalidInputError("page must be a number from 1")
    number = int(page)
    events = sorted({e.event for e in entries})
    start = day_bound(since, end=False, what="since")
    end = day_bound(until, end=True, what="until")
    kept = [
        e
        for e in entries
        if (not event or e.event == event)
        and (start is None or e.at >= start)
        and (end is None or e.at <= end)
    ]
    # Newest first: what just happened is what one comes to check. Every entry stays
    # reachable, page by page (the log only grows).
    kept.reverse()
    at = (number - 1) * PAGE_SIZE

    def link(to: int) -> str:
        args = {"event": event, "since": since, "until": until, "page": str(to)}
        return f"{action}?" + urlencode({k: v for k, v in args.items() if v})

    return {
        "entries": kept[at : at + PAGE_SIZE],
        "events": events,
        "event": event,
        "since": since,
        "until": until,
        "page": number,
        "matching": len(kept),
        "prev_link": link(number - 1) if number > 1 else None,
        "next_link": link(number + 1) if len(kept) > at + PAGE_SIZE else None,
        "first_link": link(1),
    }


@router.get("/audit")
def persona_audit(
    request: Request,
    browser_session: Annotated[BrowserSession, Depends(browser)],
    session: Annotated[Session, Depends(awake)],
    event: str = "",
    since: str = "",
    until: str = "",
    page: str = "1",
) -> Response:
    shown = _filtered(session.audit(), "/audit", event, since, until, page)
    return render(request, browser_session, "audit.html", scope="persona", verify=None, **shown)


@router.get("/audit/store")
def store_audit(
    request: Request,
    browser_session: Annotated[BrowserSession, Depends(browser)],
    event: str = "",
    since: str = "",
    until: str = "",
    page: str = "1",
) -> Response:
    store = console_of(request).store
    shown = _filtered(store.audit(), "/audit/store", event, since, until, page)
    return render(
        request, browser_session, "audit.html", scope="store", verify=store.verify_audit(), **shown
    )
