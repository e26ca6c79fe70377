"""The audit trail: the awake persona's own entries, and the whole chain for the store's owner.

Audit entries never hold memory content, only events and counts. The persona's page shows its
entries without their chain numbers (as the HTTP API does: gaps in ``seq`` would count what
other personas did); the store page shows the whole chain with hashes and the result of
``verify``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from ..model import AuditEntry
from ..session import Session
from .app import awake, browser, console_of, render
from .forms import day_bound
from .security import BrowserSession

router = APIRouter()

PAGE_LIMIT = 500


def _filtered(
    entries: list[AuditEntry], event: str, since: str, until: str
) -> tuple[list[AuditEntry], list[str]]:
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
    # Newest first: what just happened is what one comes to check.
    return list(reversed(kept))[:PAGE_LIMIT], events


@router.get("/audit")
def persona_audit(
    request: Request,
    browser_session: Annotated[BrowserSession, Depends(browser)],
    session: Annotated[Session, Depends(awake)],
    event: str = "",
    since: str = "",
    until: str = "",
) -> Response:
    entries, events = _filtered(session.audit(), event, since, until)
    return render(
        request,
        browser_session,
        "audit.html",
        entries=entries,
        events=events,
        scope="persona",
        event=event,
        since=since,
        until=until,
        verify=None,
    )


@router.get("/audit/store")
def store_audit(
    request: Request,
    browser_session: Annotated[BrowserSession, Depends(browser)],
    event: str = "",
    since: str = "",
    until: str = "",
) -> Response:
    store = console_of(request).store
    entries, events = _filtered(store.audit(), event, since, until)
    return render(
        request,
        browser_session,
        "audit.html",
        entries=entries,
        events=events,
        scope="store",
        event=event,
        since=since,
        until=until,
        verify=store.verify_audit(),
    )
