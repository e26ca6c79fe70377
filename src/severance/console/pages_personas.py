"""The persona list, waking and sleeping, and the clean slate.

The list shows what the store knows *without* unlocking anyone: names, memory counts, sealed
or not, and the floors that wake each persona. Waking is a form post (audited as an ``enter``
by client ``console``); a sealed persona asks for its own secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse

from ..errors import InvalidInputError, UnlockError
from ..floors import Floor
from ..model import PersonaInfo
from .forms import secret_from
from .plumbing import Posted, browser, console_of, posted, render
from .security import BrowserSession

router = APIRouter()


@dataclass(frozen=True)
class PersonaRow:
    info: PersonaInfo
    memories: int
    floors: tuple[Floor, ...]


def persona_rows(request: Request) -> list[PersonaRow]:
    store = console_of(request).store
    floors = store.floors()
    return [
        PersonaRow(p, store.memory_count(p.name), tuple(f for f in floors if f.persona == p.name))
        for p in store.personas()
    ]


@router.get("/")
def personas(request: Request, session: Annotated[BrowserSession, Depends(browser)]) -> Response:
    return render(request, session, "personas.html", rows=persona_rows(request))


@router.post("/wake")
def wake(request: Request, form: Annotated[Posted, Depends(posted)]) -> Response:
    persona, floor = form.get("persona"), form.get("floor")
    if not persona or not floor:
        raise InvalidInputError("choose a persona and the floor to wake it through")
    try:
        woken = form.browser.state.wake(persona, floor, secret_from(form))
    except UnlockError as e:
        return render(
            request,
            form.browser,
            "personas.html",
            status=403,
            rows=persona_rows(request),
            wake_error=(persona, str(e)),
        )
    form.browser.state.flash(f"{woken.persona} is awake (floor {floor}).")
    for notice in woken.notices():
        # What crossed into this persona while it slept: it is told on waking, here too.
        detail = ", ".join(f"{k} {v}" for k, v in sorted(notice.detail.items()))
        form.browser.state.flash(
            f"While {woken.persona} slept: {notice.event.replace('_', ' ')}"
            f" at {notice.at:%Y-%m-%d %H:%M} UTC ({detail})."
        )
    return RedirectResponse("/memories", status_code=303)


@router.post("/sleep")
def sleep(form: Annotated[Posted, Depends(posted)]) -> Response:
    state = form.browser.state
    session = state.session
    meant = form.get("persona")
    if session is not None and meant and meant != session.persona:
        # A stale tab's Sleep button (its page was drawn while another persona was awake):
        # the persona it meant is asleep already; the one awake now stays awake.
        state.flash(f"{meant} was already asleep; {session.persona} is awake and stays so.")
        return RedirectResponse("/", status_code=303)
    state.sleep()
    if session is not None:
        state.flash(f"{session.persona} is asleep.")
    return RedirectResponse("/", status_code=303)


@router.get("/personas/{name}/clean-slate")
def clean_slate_page(
    request: Request, name: str, session: Annotated[BrowserSession, Depends(browser)]
) -> Response:
    store = console_of(request).store
    info = store.persona(name)
    return render(
        request, session, "clean_slate.html", persona=info, memories=store.memory_count(name)
    )


@router.post("/personas/{name}/clean-slate")
def clean_slate(request: Request, name: str, form: Annotated[Posted, Depends(posted)]) -> Response:
    store = console_of(request).store
    info = store.persona(name)
    typed = form.get("confirm")
    if typed != name:
        return render(
            request,
            form.browser,
            "clean_slate.html",
            status=400,
            persona=info,
            memories=store.memory_count(name),
            error="The name you typed does not match; nothing was erased.",
        )
    state = form.browser.state
    awake_now = state.session
    if awake_now is not None and awake_now.persona == name:
        state.sleep()
    if state.review is not None and name in (state.review.source, state.review.into):
        state.drop_review()
    erased = store.clean_slate(name, confirm=typed)
    form.browser.state.flash(f"Clean slate: {name} and its {erased} memories are gone for good.")
    return RedirectResponse("/", status_code=303)
