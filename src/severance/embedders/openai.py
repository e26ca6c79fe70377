"""A client for any OpenAI-compatible ``/v1/embeddings`` endpoint, on the standard library only.

Ollama, vLLM, LM Studio, llama.cpp's server and OpenAI itself all speak this protocol, so one
small client covers them without pulling in an SDK. Everything that can go wrong on the wire
(refused connection, timeout, HTTP error, a body that is not the expected JSON, vectors of the
wrong length or count) becomes :class:`~severance.errors.EmbedderError`, so callers handle a
remote model exactly like a local one.

Error messages carry the status and the server's own short reason but never the request body
(it holds memory text) and never the API key.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

import numpy as np

from severance.embedders.base import Vectors, check_texts, empty, l2_normalise
from severance.errors import EmbedderError, InvalidInputError

__all__ = ["API_KEY_ENV_VARS", "DEFAULT_BASE_URL", "OpenAIEmbedder", "parse_spec"]

#: Where the API key is looked up, first match wins, at every request.
API_KEY_ENV_VARS = ("SEVERANCE_EMBEDDER_API_KEY", "OPENAI_API_KEY")
#: Used when a spec names only a model (``openai:text-embedding-3-small``).
DEFAULT_BASE_URL = "https://api.openai.com/v1"
_PROBE_TEXT = "dimension probe"
_REASON_CHARS = 200


class OpenAIEmbedder:
    """Embeds through an OpenAI-compatible ``POST {base_url}/embeddings``.

    ``base_url`` is the API root, as in the OpenAI SDK (``http://localhost:11434/v1``); a URL
    that already ends in ``/embeddings`` is used as is. ``dimension`` may be declared; if not,
    it is discovered by embedding one probe text the first time it is needed, and either way
    every response is checked against it. ``api_key`` overrides the environment variables in
    :data:`API_KEY_ENV_VARS`.

    Instances are safe to share between threads.
    """

    def __init__(
        self,
        model: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        dimension: int | None = None,
        batch_size: int = 64,
        timeout: float = 60.0,
        api_key: str | None = None,
    ) -> None:
        if not model or model != model.strip():
            raise InvalidInputError(f"invalid embedding model name {model!r}")
        if dimension is not None and dimension < 1:
            raise InvalidInputError("embedding dimension must be a positive integer")
        if batch_size < 1:
            raise InvalidInputError("batch_size must be at least 1")
        self.model: str = model
        self.name: str = f"openai:{model}"
        self.batch_size: int = batch_size
        self.url: str = _endpoint(base_url)
        self.timeout: float = timeout
        self._api_key = api_key
        self._dimension = dimension
        self._dimension_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(model={self.model!r}, url={self.url!r})"

    @property
    def dimension(self) -> int:
        """The vector length; discovered with one request on first use if not declared."""
        if self._dimension is None:
            with self._dimension_lock:
                if self._dimension is None:
                    self._dimension = len(self._request([_PROBE_TEXT])[0])
        return self._dimension

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts`` in requests of at most :attr:`batch_size` inputs each."""
        items = check_texts(texts)
        if not items:
            return empty(self.dimension)
        rows: list[list[float]] = []
        for start in range(0, len(items), self.batch_size):
            rows.extend(self._request(items[start : start + self.batch_size]))
        if self._dimension is None:
            # The first real response tells us the dimension; no separate probe needed.
            with self._dimension_lock:
                if self._dimension is None:
                    self._dimension = len(rows[0])
        dimension = self._dimension
        bad = {len(row) for row in rows} - {dimension}
        if bad:
            raise EmbedderError(
                f"{self.url} returned vectors of length {sorted(bad)} for model "
                f"{self.model!r}, expected {dimension}"
            )
        return l2_normalise(np.asarray(rows, dtype=np.float32), source=self.url)

    def _request(self, batch: list[str]) -> list[list[float]]:
        """One POST; returns the raw vectors in input order."""
        body = json.dumps({"model": self.model, "input": batch}).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = self._api_key or _key_from_env()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            try:
                reason = _error_reason(exc.read(), exc.reason)
            except (OSError, http.client.HTTPException):
                reason = str(exc.reason)
            finally:
                exc.close()
            raise EmbedderError(
                f"embedding request to {self.url} failed: HTTP {exc.code} {reason}"
            ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise EmbedderError(f"embedding request to {self.url} failed: {cause}") from exc
        return _parse_response(raw, len(batch), self.url)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: following one would resend the API key (or drop the body)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


def parse_spec(arg: str) -> OpenAIEmbedder:
    """Build an embedder from the part of a spec after ``openai:``.

    The form is ``<model>[@<base_url>][#<dimension>]``, e.g.
    ``nomic-embed-text@http://localhost:11434/v1#768``. The model is everything before the
    first ``@``; the dimension is the text after the last ``#``.
    """
    rest, hash_sign, dim_text = arg.rpartition("#")
    if not hash_sign:
        rest, dim_text = arg, ""
    dimension: int | None = None
    if hash_sign:
        if not (dim_text.isascii() and dim_text.isdigit()) or int(dim_text) < 1:
            raise InvalidInputError(
                f"invalid dimension {dim_text!r} in embedder spec 'openai:{arg}'"
            )
        dimension = int(dim_text)
    model, at, base_url = rest.partition("@")
    if not model or model != model.strip() or (at and not base_url):
        raise InvalidInputError(
            f"malformed embedder spec 'openai:{arg}'; expected openai:<model>@<base_url>"
        )
    return OpenAIEmbedder(model, base_url or DEFAULT_BASE_URL, dimension=dimension)


def _endpoint(base_url: str) -> str:
    try:
        parsed = urllib.parse.urlsplit(base_url)
        parsed.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        parsed = urllib.parse.urlsplit("")
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.fragment:
        raise InvalidInputError(
            f"invalid embedding endpoint {base_url!r}; expected http(s)://host[:port]/v1"
        )
    if "@" in parsed.netloc:
        # Credentials in a URL end up in logs and error messages; use the key variables.
        raise InvalidInputError(
            "the embedding endpoint must not contain credentials; "
            f"set {API_KEY_ENV_VARS[0]} instead"
        )
    url = base_url.rstrip("/")
    return url if url.endswith("/embeddings") else f"{url}/embeddings"


def _key_from_env() -> str | None:
    for var in API_KEY_ENV_VARS:
        value = os.environ.get(var, "").strip()
        if value:
            return value
    return None


def _error_reason(body: bytes, fallback: object) -> str:
    """The server's short error message (OpenAI style ``{"error": {"message": ...}}``)."""
    message: object = None
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        message = message or data.get("detail") or data.get("message")
    text = str(message) if isinstance(message, str) and message else str(fallback or "")
    text = " ".join(text.split())
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"


def _parse_response(raw: bytes, expected: int, url: str) -> list[list[float]]:
    def bad(why: str) -> EmbedderError:
        return EmbedderError(f"unexpected response from {url}: {why}")

    try:
        data: Any = json.loads(raw)
    except ValueError:
        raise bad("the body is not JSON") from None
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise bad("no 'data' list")
    if len(items) != expected:
        raise bad(f"{len(items)} embeddings for {expected} inputs")
    rows: list[list[float] | None] = [None] * expected
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise bad("a 'data' item is not an object")
        index = item.get("index", position)
        vector = item.get("embedding")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < expected:
            raise bad(f"invalid index {index!r}")
        if rows[index] is not None:
            raise bad(f"index {index} appears twice")
        if not isinstance(vector, list) or not vector:
            raise bad("an 'embedding' is not a non-empty list of numbers")
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in vector):
            raise bad("an 'embedding' holds a non-number")
        rows[index] = vector
    return [row for row in rows if row is not None]
