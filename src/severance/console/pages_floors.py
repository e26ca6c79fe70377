"""Floors: the list in order (first match wins), testing a context, adding, moving, removing.

The list says which floors can never match by rule (:meth:`Store.shadowed_floors`) and offers
the move that fixes each; a floor is added at the end or just before/after a chosen one.

Nothing here needs a persona awake: floors hold rules, never memories.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse

from ..errors import FloorNotFoundError, InvalidInputError, SeveranceError
from ..floors import Context
from .forms import split_commas, split_list
from .plumbing import Posted, browser, console_of, posted, render
from .security import BrowserSession

router = APIRouter()

# Windows are separated by ";", a new line, or a comma right after a window's closing time: a
# comma inside a window separates days ("mon,wed 09:00-12:00"), and days never end in a digit.
_BETWEEN_WINDOWS = re.compile(r"(?<=\d)\s*,\s*|\s*[;\n]\s*")


def split_hours(text: str) -> list[str]:
    """``"mon,wed 09:00-12:00, sat 10:00-14:00"`` → its two windows."""
    return [w.strip() for w in _BETWEEN_WINDOWS.split(text) if w.strip()]


def split_place(text: str) -> tuple[str | None, str | None]:
    """A place picked in a form, ``"before:NAME"`` or ``"after:NAME"`` → ``(before, after)``;
    empty means at the end. The floor name itself is checked by the store."""
    if not text:
        return None, None
    side, _, anchor = text.partition(":")
    if side not in ("before", "after") or not anchor:
        raise InvalidInputError(f"say where the floor goes: before or after a floor, not {text!r}")
    return (anchor, None) if side == "before" else (None, anchor)


def _page(request: Request, session: BrowserSession, status: int = 200, **extra: Any) -> Response:
    store = console_of(request).store
    return render(
        request,
        session,
        "floors.html",
        status=status,
        floors=store.floors(),
        shadows={s.floor: s for s in store.shadowed_floors()},
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
        for k in ("name", "persona", "clients", "paths", "hosts", "hours", "timezone", "place")
    }
    try:
        before, after = split_place(fields["place"])
        floor = console_of(request).store.add_floor(
            fields["name"],
            fields["persona"],
            clients=split_list(fields["clients"]),
            paths=split_commas(fields["paths"]),
            hosts=split_list(fields["hosts"]),
            hours=split_hours(fields["hours"]),
            timezone=fields["timezone"] or None,
            default=form.get("default") == "on",
            before=before,
            after=after,
        )
    except SeveranceError as e:
        return _page(request, form.browser, status=400, add_error=str(e), typed=fields)
    form.browser.state.flash(f"Added floor {floor.name} (wakes {floor.persona}).")
    return RedirectResponse("/floors", status_code=303)


@router.post("/floors/{name}/move")
def move(request: Request, name: str, form: Annotated[Posted, Depends(posted)]) -> Response:
    """Move floor ``name`` just before or after another (``place``): its passes stay its own."""
    try:
        before, after = split_place(form.get("place"))
        if before is None and after is None:
            raise InvalidInputError("say where to move the floor: before or after another floor")
        position = console_of(request).store.move_floor(name, before=before, after=after)
    except FloorNotFoundError as e:
        return _page(request, form.browser, status=404, move_error=str(e))
    except SeveranceError as e:
        return _page(request, form.browser, status=400, move_error=str(e))
    form.browser.state.flash(f"Moved floor {name} to position {position}.")
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
