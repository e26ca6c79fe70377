"""Crossings: reintegration review, override, and the way to the clean slate.

A reintegration is reviewed before it runs: the form picks source, target, mode and a
selection (query, tags, kinds, time); the console runs it as a dry run and shows every memory
that would cross, each with a checkbox. Unticking one excludes it; "Update the dry run" plans
again with what is still ticked, and "Run" crosses exactly the ticked memories that the
selection still selects (:attr:`Selection.ids`), then shows the result and its audit entries.
Near-duplicates are listed as "similar, kept apart"; only an explicit tick ("merge similar
memories", ``merge_similar``) merges them, and the dry run is updated to say so before it runs.
The review closes the awake persona first: it is the one page that shows two personas.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse

from ..crossings import Selection
from ..errors import InvalidInputError, NotFoundError, SeveranceError
from ..store import MAX_OVERRIDE_MINUTES
from .forms import day_bound, secret_from, split_commas, split_list
from .pages_personas import persona_rows
from .plumbing import Posted, browser, console_of, posted, render
from .security import BrowserSession
from .state import Review

router = APIRouter()


def _page(
    request: Request, session: BrowserSession, status: int = 200, **extra: object
) -> Response:
    return render(
        request,
        session,
        "crossings.html",
        status=status,
        rows=persona_rows(request),
        max_minutes=MAX_OVERRIDE_MINUTES,
        **extra,
    )


@router.get("/crossings")
def crossings(request: Request, session: Annotated[BrowserSession, Depends(browser)]) -> Response:
    return _page(request, session)


def _selection(form: Posted) -> Selection:
    limit_text = form.get("limit") or "50"
    if not limit_text.isdigit():
        raise InvalidInputError("limit must be a whole number")
    return Selection(
        query=form.get("query") or None,
        limit=int(limit_text),
        kinds=split_list(form.get("kinds")) or None,
        tags=split_commas(form.get("tags")) or None,
        since=day_bound(form.get("since"), end=False, what="since"),
        until=day_bound(form.get("until"), end=True, what="until"),
    )


@router.post("/crossings/reintegrate")
def review(request: Request, form: Annotated[Posted, Depends(posted)]) -> Response:
    """Dry-run the reintegration described by the form and open its review."""
    try:
        started = form.browser.state.start_review(
            form.get("source"),
            form.get("into"),
            form.get("mode"),
            _selection(form),
            secret_from(form, "source_"),
            secret_from(form, "into_"),
        )
    except SeveranceError as e:
        return _page(
            request,
            form.browser,
            status=400,
            reintegrate_error=str(e),
            typed={k: form.get(k) for k in form.fields if "passphrase" not in k},
        )
    return RedirectResponse(f"/crossings/review/{started.id}", status_code=303)


def _review(session: BrowserSession, review_id: str) -> Review:
    current = session.state.review
    if current is None or current.id != review_id:
        raise NotFoundError("this review is over (it ran, or another one was started)")
    return current


@router.get("/crossings/review/{review_id}")
def review_page(
    request: Request, review_id: str, session: Annotated[BrowserSession, Depends(browser)]
) -> Response:
    current = _review(session, review_id)
    template = "reintegration_result.html" if current.result is not None else "review.html"
    audit = []
    if current.result is not None:
        store = console_of(request).store
        audit = [
            e
            for name in (current.source, current.into)
            for e in store.audit(name)[-1:]
            if e.event in ("reintegrated_into", "reintegrated_from")
        ]
    return render(request, session, template, r=current, audit=audit)


@router.post("/crossings/review/{review_id}")
def decide(request: Request, review_id: str, form: Annotated[Posted, Depends(posted)]) -> Response:
    """Update the dry run with the ticked memories, run it, or cancel it."""
    state = form.browser.state
    current = _review(form.browser, review_id)
    if current.result is not None:
        raise InvalidInputError("this reintegration already ran")
    action = form.get("action")
    if action == "cancel":
        state.drop_review()
        state.flash("Reintegration cancelled; nothing crossed.")
        return RedirectResponse("/crossings", status_code=303)
    planned = [m.id for m in current.plan.memories]
    kept = set(form.all("include"))
    included = tuple(i for i in planned if i in kept)
    current.excluded = frozenset(planned) - kept
    current.merge_similar = form.get("merge_similar") == "on"
    if not included:
        return render(
            request,
            form.browser,
            "review.html",
            status=400,
            r=current,
            audit=[],
            error="Nothing is ticked: tick at least one memory, or cancel.",
        )
    run = action == "run"
    result = console_of(request).store.reintegrate(
        current.source,
        current.into,
        select=dataclasses.replace(current.selection, ids=included),
        mode="move" if current.mode == "move" else "copy",
        dry_run=not run,
        merge_similar=current.merge_similar,
        source_secret=current.source_secret,
        into_secret=current.into_secret,
    )
    if run:
        current.result = result
        current.source_secret = current.into_secret = None  # done with them
    else:
        # The review keeps listing every planned memory, ticked or not, so that a mistaken
        # untick can be undone; the counts become those of the ticked ones.
        current.counts = result
    return RedirectResponse(f"/crossings/review/{current.id}", status_code=303)


@router.post("/crossings/override")
def override(request: Request, form: Annotated[Posted, Depends(posted)]) -> Response:
    minutes = form.get("minutes")
    try:
        if not minutes.isdigit():
            raise InvalidInputError(f"an override lasts 1 to {MAX_OVERRIDE_MINUTES} minutes")
        woken = form.browser.state.override(
            form.get("persona"), form.raw("reason"), int(minutes), secret_from(form)
        )
    except SeveranceError as e:
        return _page(request, form.browser, status=400, override_error=str(e))
    form.browser.state.flash(
        f"Override: {woken.persona} is awake outside its floors until"
        f" {woken.expires_at:%H:%M} UTC. It will be told the next time it wakes."
    )
    return RedirectResponse("/memories", status_code=303)
