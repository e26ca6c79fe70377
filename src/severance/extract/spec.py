"""Extractor specs and a persona's extractor settings (sealed with the persona's own key).

A spec names the protocol, the endpoint and the model in one string:

    openai:https://api.openai.com/v1#model=gpt-4.1-mini
    openai:http://127.0.0.1:8000/v1#model=Qwen/Qwen2.5-7B-Instruct&timeout=120
    ollama:http://127.0.0.1:11434#model=llama3.1
    none

``openai:`` speaks ``POST {url}/chat/completions`` (OpenAI, vLLM, llama.cpp's server, LM
Studio, Ollama's ``/v1``); ``ollama:`` speaks Ollama's native ``POST {url}/api/chat`` with a JSON
schema as ``format``. Fragment options: ``model`` (required), ``timeout`` (seconds per call,
default 60), ``max_tokens`` (default 2048), ``batch`` (turns per call, default 20),
``concurrency`` (calls in flight, default 4), ``context`` (existing memories shown, default 20).

The settings — spec plus where the API key comes from — are kept as one blob sealed with the
persona's data key (AES-GCM, the store and persona ids as associated data), so they are never
in plaintext in the database, a sealed persona's settings open only with its secret, and a clean
slate, which destroys the key, erases them.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import InvalidInputError, MissingKeyError

__all__ = ["ExtractorSettings", "ExtractorSpec", "parse_spec"]

Protocol = Literal["openai", "ollama"]
_PROTOCOLS: tuple[Protocol, ...] = ("openai", "ollama")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_LIMITS: dict[str, tuple[float, float]] = {
    "timeout": (0.1, 3600.0),
    "max_tokens": (16, 131072),
    "batch": (1, 500),
    "concurrency": (1, 64),
    "context": (0, 200),
}


@dataclass(frozen=True)
class ExtractorSpec:
    """A parsed extractor spec: which protocol, endpoint and model, and the call limits."""

    protocol: Protocol
    url: str
    model: str
    timeout: float = 60.0
    max_tokens: int = 2048
    batch: int = 20
    concurrency: int = 4
    context: int = 20

    def to_text(self) -> str:
        """The spec back as text (defaults left out); never holds a key."""
        options: dict[str, str] = {"model": self.model}
        defaults = ExtractorSpec(self.protocol, self.url, self.model)
        for name in _LIMITS:
            value = getattr(self, name)
            if value != getattr(defaults, name):
                options[name] = f"{value:g}" if isinstance(value, float) else str(value)
        return f"{self.protocol}:{self.url}#{urllib.parse.urlencode(options, safe='/:')}"


def parse_spec(text: str) -> ExtractorSpec | None:
    """Parse ``openai:URL#model=NAME``, ``ollama:URL#model=NAME`` or ``none`` (None)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError(
            "an extractor spec is 'openai:URL#model=NAME', 'ollama:…' or 'none'"
        )
    text = text.strip()
    if text == "none":
        return None
    protocol, sep, rest = text.partition(":")
    if not sep or protocol not in _PROTOCOLS:
        raise InvalidInputError(
            f"unknown extractor {protocol!r}: use 'openai:URL#model=NAME', "
            "'ollama:URL#model=NAME' or 'none'"
        )
    url, _, fragment = rest.partition("#")
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidInputError(f"extractor URL must be http:// or https:// with a host: {url!r}")
    if parsed.username or parsed.password:
        # A key in the URL would be stored with the spec and shown back; keep keys apart.
        raise InvalidInputError("put the API key in an environment variable, not in the URL")
    if parsed.query:
        raise InvalidInputError("extractor options go after '#', e.g. '#model=NAME&timeout=30'")
    try:
        options = dict(
            urllib.parse.parse_qsl(fragment, keep_blank_values=True, strict_parsing=True)
        )
    except ValueError:
        raise InvalidInputError(f"cannot read extractor options {fragment!r}") from None
    model = options.pop("model", "").strip()
    if not model:
        raise InvalidInputError("the extractor spec needs a model: '…#model=NAME'")
    values: dict[str, Any] = {}
    for name, raw in options.items():
        if name not in _LIMITS:
            raise InvalidInputError(
                f"unknown extractor option {name!r} (known: model, {', '.join(_LIMITS)})"
            )
        low, high = _LIMITS[name]
        try:
            number = float(raw) if name == "timeout" else int(raw)
        except ValueError:
            raise InvalidInputError(f"extractor option {name} must be a number") from None
        if not low <= number <= high:
            raise InvalidInputError(f"extractor option {name} must be from {low:g} to {high:g}")
        values[name] = number
    return ExtractorSpec(protocol, url.rstrip("/"), model, **values)


def _is_key(value: str) -> bool:
    """Whether ``value`` can be sent as a bearer token (and nothing more)."""
    return 0 < len(value) <= 4096 and value.isascii() and value.isprintable() and " " not in value


@dataclass(frozen=True)
class ExtractorSettings:
    """A persona's extractor: the spec and where its API key comes from.

    ``api_key_env`` names an environment variable read at each call; ``api_key`` is a key
    kept (sealed) in the settings themselves. Neither is ever shown by :meth:`describe`.
    """

    spec: ExtractorSpec
    api_key_env: str | None = None
    api_key: str | None = None

    def key(self) -> str | None:
        """The API key to send, if any; MissingKeyError if the named variable is unset."""
        if self.api_key is not None:
            return self.api_key
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            raise MissingKeyError(f"the extractor's API key variable {self.api_key_env} is not set")
        if not _is_key(value):
            raise InvalidInputError(
                f"the extractor's API key in {self.api_key_env} is not printable ASCII without "
                "spaces (a stray newline or quote?)"
            )
        return value

    def describe(self) -> dict[str, Any]:
        """What may be shown: the spec and where the key comes from, never the key."""
        key: str | None = None
        if self.api_key is not None:
            key = "sealed"
        elif self.api_key_env is not None:
            key = f"${self.api_key_env}"
        return {"extractor": self.spec.to_text(), "api_key": key}

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "spec": self.spec.to_text(),
                "api_key_env": self.api_key_env,
                "api_key": self.api_key,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> ExtractorSettings:
        data = json.loads(raw)
        spec = parse_spec(data["spec"])
        assert spec is not None  # only real specs are ever sealed
        return cls(spec, data.get("api_key_env"), data.get("api_key"))

    @classmethod
    def build(
        cls, spec: ExtractorSpec, *, api_key_env: str | None, api_key: str | None
    ) -> ExtractorSettings:
        """Validated settings; at most one key source."""
        if api_key_env is not None and api_key is not None:
            raise InvalidInputError("give api_key_env or api_key, not both")
        if api_key_env is not None and (
            not isinstance(api_key_env, str) or not _ENV_NAME.match(api_key_env)
        ):
            raise InvalidInputError("api_key_env must be an environment variable name")
        if api_key is not None and (not isinstance(api_key, str) or not _is_key(api_key)):
            # Sent as an HTTP header: anything else would fail at each call, or inject one.
            raise InvalidInputError(
                "api_key must be 1 to 4096 characters of printable ASCII without spaces"
            )
        return cls(spec, api_key_env, api_key)
