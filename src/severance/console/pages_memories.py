"""The awake persona's memories: search and browse, one memory with its history, edit, forget.

With a query the list is the real hybrid recall (:meth:`Session.recall`), each result with its
fused score and why it ranked (dense rank and similarity, keyword rank and BM25 score). Without
one it is the persona's memories, newest first. Both take the same filters (kind, tags, time)
and page by :data:`PAGE_SIZE`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse

from .. import validate
from ..errors import InvalidInputError
from ..model import Memory, Recall
from ..session import Session
from .app import Posted, awake, browser, posted, render
from .diff import changes
from .forms import day_bound, split_commas
from .security import BrowserSession

router = APIRouter()

PAGE_SIZE = 20
KINDS = ("fact", "episode", "preference", "note")
#: How many memories a filtered listing (no query) decrypts per step while it looks for a page.
_SCAN = 500


@dataclass(frozen=True)
class Filters:
    query: str
    kind: str
    tags: tuple[str, ...]
    since: str
    until: str
    page: int

    def matches(self, m: Memory) -> bool:
        since = day_bound(self.since, end=False, what="since")
        until = day_bound(self.until, end=True, what="until")
        return (
            (not self.kind or m.kind == self.kind)
            and all(t in m.tags for t in self.tags)
            and (since is None or m.occurred_at >= since)
            and (until is None or m.occurred_at <= until)
        )

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
    # Parse the dates now, so that a bad one is an error before any work.
    day_bound(f.since, end=False, what="since")
    day_bound(f.until, end=True, what="until")
    return f


def _search(session: Session, f: Filters) -> tuple[list[Recall], bool]:
    offset = (f.page - 1) * PAGE_SIZE
    k = min(offset + PAGE_SIZE + 1, validate.MAX_K)
    hits = session.recall(
        f.query,
        k,
        kind=f.kind or None,
        tags=f.tags or None,
        since=day_bound(f.since, end=False, what="since"),
        until=day_bound(f.until, end=True, what="until"),
    )
    return hits[offset : offset + PAGE_SIZE], len(hits) > offset + PAGE_SIZE


def _browse(session: Session, f: Filters) -> tuple[list[Memory], bool, int]:
    offset = (f.page - 1) * PAGE_SIZE
    filtered = bool(f.kind or f.tags or f.since or f.until)
    if not filtered:
        page = session.memories(limit=PAGE_SIZE, offset=offset)
        return list(page.items), page.next_offset is not None, page.total
    # The API filters only inside recall; a filtered listing walks the pages (fine for the
    # sizes a person reviews by hand; a query is the fast path for large personas).
    found: list[Memory] = []
    at, total = 0, 0
    while True:
        page = session.memories(limit=_SCAN, offset=at)
        total = page.total
        found.extend(m for m in page.items if f.matches(m))
        if len(found) > offset + PAGE_SIZE or page.next_offset is None:
            break
        at = page.next_offset
    return found[offset : offset + PAGE_SIZE], len(found) > offset + PAGE_SIZE, total


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
        items, more, _ = _browse(session, f)
        context.update(hits=None, memories=items)
    context.update(
        next_link=f.link(f.page + 1) if more else None,
        prev_link=f.link(f.page - 1) if f.page > 1 else None,
        first_link=f.link(1),
        max_hits=validate.MAX_K,
    )
    return render(request, browser_session, "memories.html", **context)


@router.get("/memories/{memory_id}")
def memory(
    request: Request,
    memory_id: str,
    browser_session: Annotated[BrowserSession, Depends(browser)],
    session: Annotated[Session, Depends(awake)],
) -> Response:
    versions = session.history(memory_id)
    return render(
        request,
        browser_session,
        "memory.html",
        m=versions[-1],
        versions=list(reversed(versions)),
        changes={c.version: c for c in changes(versions)},
    )


@router.get("/memories/{memory_id}/edit")
def edit_page(
    request: Request,
    memory_id: str,
    browser_session: Annotated[BrowserSession, Depends(browser)],
    session: Annotated[Session, Depends(awake)],
) -> Response:
    m = session.get(memory_id)
    return render(
        request,
        browser_session,
        "edit.html",
        m=m,
        kinds=KINDS,
        metadata_text=json.dumps(m.metadata, indent=2, ensure_ascii=False),
    )


@router.post("/memories/{memory_id}/edit")
def edit(
    request: Request,
    memory_id: str,
    form: Annotated[Posted, Depends(posted)],
    session: Annotated[Session, Depends(awake)],
) -> Response:
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
    return render(
        request,
        form.browser,
        "edit.html",
        status=status,
        m=current,
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
def forget_page(
    request: Request,
    memory_id: str,
    browser_session: Annotated[BrowserSession, Depends(browser)],
    session: Annotated[Session, Depends(awake)],
) -> Response:
    return render(request, browser_session, "forget.html", m=session.get(memory_id))


@router.post("/memories/{memory_id}/forget")
def forget(
    request: Request,
    memory_id: str,
    form: Annotated[Posted, Depends(posted)],
    session: Annotated[Session, Depends(awake)],
) -> Response:
    current = session.get(memory_id)
    if _changed_since(form, current):
        # Asked about one version; a newer one (which nobody confirmed) would go with it.
        return render(
            request,
            form.browser,
            "forget.html",
            status=409,
            m=current,
            error=_changed_message(current, "Here it is as it is now: forget it?"),
        )
    session.forget(memory_id)
    form.browser.state.flash("Forgotten, with its whole history.")
    return RedirectResponse("/memories", status_code=303)
