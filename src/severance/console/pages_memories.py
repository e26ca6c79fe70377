"""The awake persona's memories: search and browse, one memory with its history, edit, forget.

With a query the list is the real hybrid recall (:meth:`Session.recall`), each result with its
fused score and why it ranked (dense rank and similarity, keyword rank and BM25 score). Without
one it is the persona's memories, newest first. Both take the same filters (kind, tags, time)
and page by :data:`PAGE_SIZE`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse

from .. import validate
from ..errors import InvalidInputError
from ..model import Memory, Recall
from ..session import Session
from .diff import changes
from .forms import day_bound, split_commas
from .plumbing import Posted, awake, browser, posted, render
from .security import BrowserSession

router = APIRouter()

PAGE_SIZE = 20
KINDS = ("fact", "episode", "preference", "note")


@dataclass(frozen=True)
class Filters:
    query: str
    kind: str
    tags: tuple[str, ...]
    since: str
    until: str
    page: int

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """``since`` and ``until`` as times (an ``until`` date includes its whole day)."""
        since = day_bound(self.since, end=False, what="since")
        return since, day_bound(self.until, end=True, what="until")

    def link(self, page: int) -> str:
        args = {
            "q": self.query,
            "kind": self.kind,
            "tag": ", ".join(self.tags),
            "since": self.since,
            "until": self.until,
            "page": str(page),
        }
        return "/memories?" + urlencode({k: v for k, v in args.items() if v})


def _filters(q: str, kind: str, tag: str, since: str, until: str, page: str) -> Filters:
    if not page.isdigit() or not 1 <= int(page) <= 10_000:
        raise InvalidInputError("page must be a number from 1")
    if kind:
        validate.kind(kind)
    tags = split_commas(tag)
    validate.tags(tags)
    f = Filters(q.strip(), kind.strip(), tags, since.strip(), until.strip(), int(page))
    f.bounds()  # parse the dates now, so that a bad one is an error before any work
    return f


def _search(session: Session, f: Filters) -> tuple[list[Recall], bool]:
    offset = (f.page - 1) * PAGE_SIZE
    k = min(offset + PAGE_SIZE + 1, validate.MAX_K)
    since, until = f.bounds()
    hits = session.recall(
        f.query, k, kind=f.kind or None, tags=f.tags or None, since=since, until=until
    )
    return hits[offset : offset + PAGE_SIZE], len(hits) > offset + PAGE_SIZE


def _browse(session: Session, f: Filters) -> tuple[list[Memory], bool]:
    # The same filters as a query's, applied by the session (not by decrypting every page).
    since, until = f.bounds()
    page = session.memories(
        limit=PAGE_SIZE,
        offset=(f.page - 1) * PAGE_SIZE,
        kind=f.kind or None,
        tags=f.tags or None,
        since=since,
        until=until,
    )
    return list(page.items), page.next_offset is not None


@router.get("/memories")
def memories(
    request: Request,
    browser_session: Annotated[BrowserSession, Depends(browser)],
    session: Annotated[Session, Depends(awake)],
    q: str = "",
    kind: str = "",
    tag: str = "",
    since: str = "",
    until: str = "",
    page: str = "1",
) -> Response:
    f = _filters(q, kind, tag, since, until, page)
    context: dict[str, Any] = {"f": f, "kinds": KINDS, "total": session.count()}
    if f.query:
        hits, more = _search(session, f)
        context.update(hits=hits, memories=None)
    else:
        items, more = _browse(session, f)
        context.update(hits=None, memories=items)
    context.update(
        next_link=f.link(f.page + 1) if more else None,
        prev_link=f.link(f.page - 1) if f.page > 1 else None,
        first_link=f.link(1),
        max_hits=validate.MAX_K,
    )
    return render(request, browser_session, "memories.html", **context)


@dataclass(frozen=True)
class _OneMemory:
    """A page about one memory of the awake persona: who asks, the session, which memory."""

    request: Request
    browser: BrowserSession
    session: Session
    memory_id: str

    def page(self, template: str, m: Memory, status: int = 200, **context: Any) -> Response:
        return render(self.request, self.browser, template, status=status, m=m, **context)


def _one_memory(
    request: Request,
    memory_id: str,
    browser_session: Annotated[BrowserSession, Depends(browser)],
    session: Annotated[Session, Depends(awake)],
) -> _OneMemory:
    return _OneMemory(request, browser_session, session, memory_id)


def _one_memory_posted(
    request: Request,
    memory_id: str,
    form: Annotated[Posted, Depends(posted)],
    session: Annotated[Session, Depends(awake)],
) -> tuple[_OneMemory, Posted]:
    return _OneMemory(request, form.browser, session, memory_id), form


OneMemory = Annotated[_OneMemory, Depends(_one_memory)]
#: A form posted about one memory (its CSRF token checked), and the memory's page.
PostedAbout = Annotated[tuple[_OneMemory, Posted], Depends(_one_memory_posted)]


@router.get("/memories/{memory_id}")
def memory(this: OneMemory) -> Response:
    versions = this.session.history(this.memory_id)
    return this.page(
        "memory.html",
        versions[-1],
        versions=list(reversed(versions)),
        changes={c.version: c for c in changes(versions)},
    )


@router.get("/memories/{memory_id}/edit")
def edit_page(this: OneMemory) -> Response:
    m = this.session.get(this.memory_id)
    metadata_text = json.dumps(m.metadata, indent=2, ensure_ascii=False)
    return this.page("edit.html", m, kinds=KINDS, metadata_text=metadata_text)


@router.post("/memories/{memory_id}/edit")
def edit(posted_about: PostedAbout) -> Response:
    this, form = posted_about
    session, memory_id = this.session, this.memory_id
    # Browsers send a textarea's line breaks as CRLF: without this, saving a memory of several
    # lines would change every one of its line endings.
    text = form.raw("text").replace("\r\n", "\n").strip()
    metadata_text = form.raw("metadata").strip() or "{}"
    current = session.get(memory_id)
    status = 400
    if _changed_since(form, current):
        # Another tab, the CLI or an assistant saved a version after this form was drawn:
        # saving now would silently put the older text back over it.
        status, message = (
            409,
            _changed_message(current, "Your edit is kept below; save again to replace it."),
        )
    else:
        try:
            metadata = json.loads(metadata_text)
            if not isinstance(metadata, dict):
                raise ValueError
            updated = session.update(
                memory_id,
                text,
                kind=form.get("kind"),
                tags=_tags(form.get("tags"), current),
                metadata=metadata,
                occurred_at=form.get("occurred_at") or None,
            )
        except (ValueError, InvalidInputError) as e:
            message = (
                str(e) if isinstance(e, InvalidInputError) else "metadata must be a JSON object"
            )
        else:
            form.browser.state.flash(
                f"Saved as version {updated.version}."
                if updated.version != current.version
                else f"Nothing changed: it is still version {current.version}."
            )
            return RedirectResponse(f"/memories/{updated.id}", status_code=303)
    # The form comes back as it was typed (every field), with what was wrong; its version is
    # the current one, so saving again is a deliberate choice.
    return this.page(
        "edit.html",
        current,
        status=status,
        kinds=KINDS,
        metadata_text=metadata_text,
        error=message,
        typed={
            "text": text,
            "kind": form.get("kind"),
            "tags": form.get("tags"),
            "occurred_at": form.get("occurred_at"),
        },
    )


def _tags(typed: str, current: Memory) -> tuple[str, ...]:
    """The tags of an edit: exactly the memory's own when the field was left as drawn (a tag
    may itself hold a comma, which no typed list can say), else the comma-separated list."""
    return current.tags if typed == ", ".join(current.tags) else split_commas(typed)


def _changed_since(form: Posted, current: Memory) -> bool:
    """Whether the memory has a newer version than the one the posted form was drawn from."""
    seen = form.get("version")
    return bool(seen) and seen != str(current.version)


def _changed_message(current: Memory, then: str) -> str:
    return (
        f"This memory changed after this page was drawn: it is now version {current.version}"
        f" (see its history). {then}"
    )


@router.get("/memories/{memory_id}/forget")
def forget_page(this: OneMemory) -> Response:
    return this.page("forget.html", this.session.get(this.memory_id))


@router.post("/memories/{memory_id}/forget")
def forget(posted_about: PostedAbout) -> Response:
    this, form = posted_about
    current = this.session.get(this.memory_id)
    if _changed_since(form, current):
        # Asked about one version; a newer one (which nobody confirmed) would go with it.
        return this.page(
            "forget.html",
            current,
            status=409,
            error=_changed_message(current, "Here it is as it is now: forget it?"),
        )
    this.session.forget(this.memory_id)
    form.browser.state.flash("Forgotten, with its whole history.")
    return RedirectResponse("/memories", status_code=303)
