"""Floors: the list in order (first match wins), testing a context, adding and removing.

Nothing here needs a persona awake: floors hold rules, never memories.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse

from ..errors import FloorNotFoundError, SeveranceError
from ..floors import Context
from .app import Posted, browser, console_of, posted, render
from .forms import split_commas, split_list
from .security import BrowserSession

router = APIRouter()

# Windows are separated by ";", a new line, or a comma right after a window's closing time: a
# comma inside a window separates days ("mon,wed 09:00-12:00"), and days never end in a digit.
_BETWEEN_WINDOWS = re.compile(r"(?<=\d)\s*,\s*|\s*[;\n]\s*")


def split_hours(text: str) -> list[str]:
    """``"mon,wed 09:00-12:00, sat 10:00-14:00"`` → its two windows."""
    return [w.strip() for w in _BETWEEN_WINDOWS.split(text) if w.strip()]


def _page(request: Request, session: BrowserSession, status: int = 200, **extra: Any) -> Response:
    store = console_of(request).store
    return render(
        request,
        session,
        "floors.html",
        status=status,
        floors=store.floors(),
        personas=[p.name for p in store.personas()],
        **extra,
    )


@router.get("/floors")
def floors(request: Request, session: Annotated[BrowserSession, Depends(browser)]) -> Response:
    return _page(request, session)


@router.get("/floors/test")
def test(
    request: Request,
    session: Annotated[BrowserSession, Depends(browser)],
    floor: str = "",
    client: str = "",
    path: str = "",
    host: str = "",
    at: str = "",
) -> Response:
    asked = {"floor": floor, "client": client, "path": path, "host": host, "at": at}
    try:
        context = Context.from_mapping({k: v.strip() for k, v in asked.items() if v.strip()})
        match = console_of(request).store.resolve(context)
    except SeveranceError as e:
        return _page(request, session, asked=asked, test_error=str(e))
    return _page(request, session, asked=asked, match=match)


@router.post("/floors")
def add(request: Request, form: Annotated[Posted, Depends(posted)]) -> Response:
    fields = {
        k: form.get(k)
        for k in ("name", "persona", "clients", "paths", "hosts", "hours", "timezone")
    }
    try:
        floor = console_of(request).store.add_floor(
            fields["name"],
            fields["persona"],
            clients=split_list(fields["clients"]),
            paths=split_commas(fields["paths"]),
            hosts=split_list(fields["hosts"]),
            hours=split_hours(fields["hours"]),
            timezone=fields["timezone"] or None,
            default=form.get("default") == "on",
        )
    except SeveranceError as e:
        return _page(request, form.browser, status=400, add_error=str(e), typed=fields)
    form.browser.state.flash(f"Added floor {floor.name} (wakes {floor.persona}).")
    return RedirectResponse("/floors", status_code=303)


@router.post("/floors/{name}/remove")
def remove(request: Request, name: str, form: Annotated[Posted, Depends(posted)]) -> Response:
    store = console_of(request).store
    try:
        store.remove_floor(name)
    except FloorNotFoundError as e:
        return _page(request, form.browser, status=404, remove_error=str(e))
    form.browser.state.flash(f"Removed floor {name}.")
    return RedirectResponse("/floors", status_code=303)
