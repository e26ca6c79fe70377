"""The chat client: one call to an OpenAI-compatible or Ollama endpoint, on httpx.

Everything that can go wrong on the wire — refused connection, DNS failure, timeout, an HTTP
error status — becomes :class:`~severance.errors.ExtractorUnavailableError`; a body that is not
the protocol's JSON becomes :class:`~severance.errors.ExtractorOutputError` (which the caller
may retry once). Messages carry the status and at most a short reason from the server, never the
request body (it holds memory text) and never the API key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ExtractorOutputError, ExtractorUnavailableError, InvalidInputError
from .spec import ExtractorSettings

__all__ = ["ChatClient", "Reply"]

_REASON_CHARS = 200
#: The most an answer may weigh, whatever max_tokens says (a token is a few bytes of JSON).
_MIN_BODY_BYTES = 1 << 20
_BYTES_PER_TOKEN = 64


@dataclass(frozen=True)
class Reply:
    """The model's answer text and the token counts the server reported (None if not)."""

    content: str
    prompt_tokens: int | None
    completion_tokens: int | None


class ChatClient:
    """Sends one system + user prompt to the persona's endpoint and returns the answer.

    Thread-safe (one :class:`httpx.Client`, whose connection pool is shared); close it when
    done. ``schema`` is sent as Ollama's ``format`` (constrained decoding); OpenAI-compatible
    servers get ``response_format: json_object``, which OpenAI, vLLM, llama.cpp's server and
    LM Studio all accept, and the answer is validated against the schema afterwards anyway.
    """

    def __init__(self, settings: ExtractorSettings) -> None:
        try:
            import httpx
        except ImportError:  # pragma: no cover - depends on the installed extras
            raise InvalidInputError(
                "extraction needs httpx: pip install 'severance[extract]'"
            ) from None
        self._httpx = httpx
        self.settings = settings
        spec = settings.spec
        headers = {"User-Agent": "severance-extract"}
        key = settings.key()
        self._key = key
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        # One timeout for connect, read, write and pool wait: a hung server fails the call
        # after spec.timeout seconds at the latest between bytes.
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(spec.timeout),
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: the spec says where text goes
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def complete(self, messages: list[dict[str, str]], schema: Mapping[str, Any]) -> Reply:
        """One chat completion at temperature 0."""
        spec = self.settings.spec
        if spec.protocol == "ollama":
            url = f"{spec.url}/api/chat"
            body: dict[str, Any] = {
                "model": spec.model,
                "messages": messages,
                "stream": False,
                "format": dict(schema),
                "options": {"temperature": 0, "num_predict": spec.max_tokens},
            }
        else:
            url = f"{spec.url}/chat/completions"
            body = {
                "model": spec.model,
                "messages": messages,
                "temperature": 0,
                "max_tokens": spec.max_tokens,
                "response_format": {"type": "json_object"},
            }
        httpx = self._httpx
        where = f"{spec.protocol} extractor at {spec.url}"
        limit = max(_MIN_BODY_BYTES, spec.max_tokens * _BYTES_PER_TOKEN)
        try:
            # Streamed, so an endpoint that answers without end is cut off at the limit
            # instead of filling memory.
            with self._client.stream("POST", url, json=body) as response:
                raw = bytearray()
                for chunk in response.iter_bytes():
                    raw += chunk
                    if len(raw) > limit:
                        raise ExtractorOutputError(
                            f"{where} answered more than {limit:,} bytes; the answer was dropped"
                        )
        except httpx.TimeoutException:
            raise ExtractorUnavailableError(
                f"{where} did not answer within {spec.timeout:g} s"
            ) from None
        except httpx.HTTPError as e:
            raise ExtractorUnavailableError(
                f"{where} is unreachable ({type(e).__name__})"
            ) from None
        if response.status_code >= 300:  # redirects are not followed: text goes where told
            text = raw.decode("utf-8", "replace")
            raise ExtractorUnavailableError(
                f"{where} answered HTTP {response.status_code}{_reason(text, self._key)}"
            )
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            raise ExtractorOutputError(f"{where} answered a body that is not JSON") from None
        return _reply(data, spec.protocol, where)


def _reply(data: object, protocol: str, where: str) -> Reply:
    try:
        if protocol == "ollama":
            assert isinstance(data, dict)
            content = data["message"]["content"]
            prompt, completion = data.get("prompt_eval_count"), data.get("eval_count")
        else:
            assert isinstance(data, dict)
            content = data["choices"][0]["message"]["content"]
            usage = data.get("usage") or {}
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if not isinstance(content, str):
            raise TypeError("content is not text")
    except (AssertionError, KeyError, IndexError, TypeError, AttributeError):
        raise ExtractorOutputError(f"{where} answered JSON without a message") from None
    return Reply(content, _count(prompt), _count(completion))


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _reason(text: str, key: str | None = None) -> str:
    """A short, single-line reason from an error body (servers put theirs in ``error``).

    A server may quote the key it was sent ("invalid key sk-…"): it is masked, so the
    reason can go into logs and error messages.
    """
    reason = text
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            err = data.get("error")
            reason = err.get("message", "") if isinstance(err, dict) else str(err or "")
    except (json.JSONDecodeError, ValueError):
        pass
    if key:
        reason = reason.replace(key, "***")
    reason = " ".join(reason.split())[:_REASON_CHARS]
    if key and len(key) >= 8:
        # Cut at the limit, a key's head could remain: mask any 8-character piece of it.
        for start in range(len(key) - 7):
            reason = reason.replace(key[start : start + 8], "***")
    return f": {reason}" if reason else ""
