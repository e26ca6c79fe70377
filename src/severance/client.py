"""``severance.Client``: a Severance HTTP server, spoken to with the verbs of :class:`Session`.

An application written against a session works against a server by changing one line::

    session = store.enter(floor="office")                       # embedded
    session = Client("http://127.0.0.1:8765", token=PASS)       # over HTTP

Both return the same :class:`~severance.model.Memory`, :class:`~severance.model.Recall` and
:class:`~severance.model.Page` values and raise the same :class:`SeveranceError` types (the
server's problem documents carry each error's stable ``code``, mapped back here to its
class). The pass decides the persona, as it does for every HTTP request: a client has no way
to name another. Needs the ``server`` extra (httpx).
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, ParamSpec, TypeVar
from urllib.parse import quote

import httpx

from . import errors
from .model import AuditEntry, Memory, MemoryDraft, Notice, Page, Recall

__all__ = ["Client"]

_P = ParamSpec("_P")
_R = TypeVar("_R")
#: A problem's Retry-After when the server sent none this client can read.
_DEFAULT_RETRY = 1.0


def _answered(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Make an answer that is not what a Severance server sends a StorageError.

    Something between the client and the server (a proxy's login page, a captive portal,
    another service on the port) may answer 200 with anything; reading it must fail as a
    Severance error, not as a KeyError from deep inside.
    """
    signature = inspect.signature(method)

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        signature.bind(*args, **kwargs)  # a wrong call stays the caller's TypeError
        try:
            return method(*args, **kwargs)
        except errors.SeveranceError:
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
            raise errors.StorageError(
                f"the server's answer is not a Severance answer ({type(e).__name__})"
            ) from None

    return wrapper


def _http_date(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else None


def _retry_after(headers: httpx.Headers) -> float:
    """Seconds from a Retry-After header: a number, or an HTTP date (RFC 9110 §10.2.3)."""
    value = headers.get("Retry-After")
    if value is None:
        return _DEFAULT_RETRY
    try:
        seconds = float(value)
    except ValueError:
        when = _http_date(value)
        if when is None:
            return _DEFAULT_RETRY
        # A date counts from when the server answered (its Date header), else from now.
        sent = _http_date(headers.get("Date")) or datetime.now(when.tzinfo)
        seconds = (when - sent).total_seconds()
    # NaN, negative or absurd values are not a wait anyone means.
    return seconds if 0 <= seconds < 86_400 else _DEFAULT_RETRY


def _error_classes() -> dict[str, type[errors.SeveranceError]]:
    found: dict[str, type[errors.SeveranceError]] = {}
    pending: list[type[errors.SeveranceError]] = [errors.SeveranceError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


def _when(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def _draft(item: MemoryDraft | Mapping[str, Any] | str) -> dict[str, Any]:
    if isinstance(item, str):
        return {"text": item}
    if isinstance(item, MemoryDraft):
        return {
            "text": item.text,
            "kind": item.kind,
            "tags": list(item.tags),
            "metadata": dict(item.metadata),
            "occurred_at": _when(item.occurred_at),
            "source": item.source,
        }
    if isinstance(item, Mapping):
        return {k: _when(v) if k == "occurred_at" else v for k, v in item.items()}
    raise errors.InvalidInputError("each memory must be a MemoryDraft, a dict or a string")


class Client:
    """A persona awake on a Severance server, reached with a pass (``severance pass issue``).

    ``url`` is the server's HTTP address; ``transport`` hands in another ``httpx`` transport
    (a proxy, retries, Unix sockets).
    Use it as a context manager, or call :meth:`close`.
    """

    _CODES = _error_classes()

    def __init__(
        self,
        url: str,
        *,
        token: str,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if (
            not isinstance(token, str)
            or not token
            or not token.isascii()
            or not token.isprintable()
        ):
            # Never echo the token: it is a credential.
            raise errors.PassError("a pass token is a non-empty string of printable ASCII")
        try:
            base = httpx.URL(url.rstrip("/"))
        except (httpx.InvalidURL, TypeError):
            raise errors.InvalidInputError(f"not a server address: {url!r}") from None
        if base.scheme not in ("http", "https") or not base.host:
            raise errors.InvalidInputError(
                f"a server address is http:// or https:// with a host, not {url!r}"
            )
        self._http = httpx.Client(
            base_url=base,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "severance-client"},
            timeout=timeout,
            transport=transport,
        )
        self._persona: str | None = None
        self.floor: str | None = None

    # -- plumbing -----------------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
    ) -> Any:
        try:
            r = self._http.request(method, path, json=json, params=params)
        except httpx.TimeoutException as e:
            raise errors.StorageError(f"the server did not answer in time: {e}") from None
        except httpx.HTTPError as e:
            raise errors.StorageError(f"cannot reach the server: {e}") from None
        if r.status_code >= 400:
            self._raise(r)
        if r.status_code == 204:
            return None
        try:
            return r.json()
        except ValueError:  # JSONDecodeError, or a body that is not text
            raise errors.StorageError(
                f"the server answered {r.status_code} with a body that is not JSON"
            ) from None

    def _raise(self, r: httpx.Response) -> None:
        try:
            problem = r.json()
            code, detail = str(problem["code"]), str(problem["detail"])
        except (ValueError, KeyError, TypeError):
            raise errors.StorageError(f"the server answered {r.status_code}") from None
        cls = self._CODES.get(code, errors.SeveranceError)
        if cls is errors.RateLimitedError:
            raise errors.RateLimitedError(_retry_after(r.headers))
        if cls is errors.MemoryNotFoundError:
            raise errors.MemoryNotFoundError(detail.removeprefix("no memory with id ").strip("'"))
        if cls is errors.QuarantinedError:
            quoted = re.search(r"'(m_[^']*)'", detail)
            raise errors.QuarantinedError(quoted.group(1) if quoted else "", detail)
        raise cls(detail)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    @_answered
    def persona(self) -> str:
        """The persona the pass wakes."""
        if self._persona is None:
            info = self._call("GET", "/v1/pass")
            self._persona, self.floor = info["persona"], info["floor"]
        return self._persona

    # -- writing ------------------------------------------------------------------------------
    @_answered
    def remember(
        self,
        text: str,
        *,
        kind: str = "note",
        tags: Iterable[str] = (),
        metadata: Mapping[str, Any] | None = None,
        occurred_at: datetime | str | None = None,
        source: str | None = None,
    ) -> Memory:
        """Store one memory (see :meth:`Session.remember`)."""
        body = {
            "text": text,
            "kind": kind,
            "tags": list(tags),
            "metadata": dict(metadata or {}),
            "occurred_at": _when(occurred_at),
            "source": source,
        }
        return Memory.from_dict(self._call("POST", "/v1/memories", json=body))

    @_answered
    def remember_many(self, items: Iterable[MemoryDraft | Mapping[str, Any] | str]) -> list[Memory]:
        """Store many memories, 1,000 a request (each request all or nothing)."""
        drafts = [_draft(item) for item in items]
        out: list[Memory] = []
        for start in range(0, len(drafts), 1000):
            data = self._call(
                "POST", "/v1/memories/batch", json={"memories": drafts[start : start + 1000]}
            )
            out.extend(Memory.from_dict(m) for m in data["memories"])
        return out

    @_answered
    def remember_messages(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        session: str | None = None,
        at: datetime | str | None = None,
        tags: Iterable[str] = (),
        metadata: Mapping[str, Any] | None = None,
        source: str | None = None,
    ) -> list[Memory]:
        """Remember a conversation (see :meth:`Session.remember_messages`)."""
        body = {
            "messages": [
                {k: _when(v) if k in ("timestamp", "created_at") else v for k, v in m.items()}
                for m in messages
            ],
            "session": session,
            "at": _when(at),
            "tags": list(tags),
            "metadata": dict(metadata or {}),
            "source": source,
        }
        data = self._call("POST", "/v1/conversations", json=body)
        return [Memory.from_dict(m) for m in data["memories"]]

    @_answered
    def update(
        self,
        memory_id: str,
        text: str | None = None,
        *,
        kind: str | None = None,
        tags: Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        occurred_at: datetime | str | None = None,
    ) -> Memory:
        """Change a memory, keeping the previous version in its history."""
        body = {
            "text": text,
            "kind": kind,
            "tags": None if tags is None else list(tags),
            "metadata": None if metadata is None else dict(metadata),
            "occurred_at": _when(occurred_at),
        }
        path = f"/v1/memories/{_segment(memory_id)}"
        return Memory.from_dict(
            self._call("PATCH", path, json={k: v for k, v in body.items() if v is not None})
        )

    @_answered
    def forget(self, memory_id: str) -> None:
        """Delete a memory for good, with its whole history."""
        self._call("DELETE", f"/v1/memories/{_segment(memory_id)}")

    # -- reading ------------------------------------------------------------------------------
    @_answered
    def get(self, memory_id: str) -> Memory:
        """One memory by id."""
        return Memory.from_dict(self._call("GET", f"/v1/memories/{_segment(memory_id)}"))

    @_answered
    def history(self, memory_id: str) -> list[Memory]:
        """Every version of a memory, oldest first."""
        data = self._call("GET", f"/v1/memories/{_segment(memory_id)}/history")
        return [Memory.from_dict(m) for m in data["versions"]]

    @_answered
    def memories(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        newest_first: bool = True,
        kind: str | Iterable[str] | None = None,
        tags: Iterable[str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> Page:
        """A page of memories in the order they were learned, optionally filtered."""
        params: list[tuple[str, str | int]] = [
            ("limit", limit),
            ("offset", offset),
            ("order", "newest" if newest_first else "oldest"),
        ]
        kinds = [kind] if isinstance(kind, str) else list(kind or ())
        params += [("kind", k) for k in kinds] + [("tag", t) for t in tags or ()]
        params += [(k, v) for k, v in (("since", _when(since)), ("until", _when(until))) if v]
        data = self._call("GET", "/v1/memories", params=params)
        return Page(
            tuple(Memory.from_dict(m) for m in data["items"]), data["total"], data["next_offset"]
        )

    @_answered
    def count(self) -> int:
        """How many memories the persona holds."""
        return self.memories(limit=1).total

    @_answered
    def recall(
        self,
        query: str,
        k: int = 10,
        *,
        kind: str | Iterable[str] | None = None,
        tags: Iterable[str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        recency: float = 0.0,
        mode: str = "hybrid",
        min_similarity: float | None = None,
    ) -> list[Recall]:
        """The memories that best answer ``query`` (see :meth:`Session.recall`)."""
        body = {
            "query": query,
            "k": k,
            "kinds": None if kind is None else ([kind] if isinstance(kind, str) else list(kind)),
            "tags": None if tags is None else list(tags),
            "since": _when(since),
            "until": _when(until),
            "recency": recency,
            "mode": mode,
            "min_similarity": min_similarity,
        }
        data = self._call("POST", "/v1/recall", json=body)
        return [Recall.from_dict(r) for r in data["results"]]

    @_answered
    def notices(self) -> list[Notice]:
        """Overrides and reintegrations that touched the persona since it last woke normally."""
        data = self._call("GET", "/v1/notices")
        return [
            Notice(at=datetime.fromisoformat(n["at"]), event=n["event"], detail=n["detail"])
            for n in data["notices"]
        ]

    @_answered
    def audit(self) -> list[AuditEntry]:
        """The persona's audit entries, without the chain fields (the server withholds them)."""
        data = self._call("GET", "/v1/audit")
        return [
            AuditEntry(
                seq=0,
                at=datetime.fromisoformat(e["at"]),
                event=e["event"],
                persona_id=None,
                persona=self.persona,
                detail=e["detail"],
                prev_hash="",
                hash="",
            )
            for e in data["entries"]
        ]


def _segment(memory_id: str) -> str:
    if not isinstance(memory_id, str) or not memory_id:
        raise errors.InvalidInputError("a memory id must be a non-empty string")
    # An id is one path segment: quote everything, "/" included.
    return quote(memory_id, safe="")
