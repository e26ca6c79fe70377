"""Input checks shared by every interface. Each raises :class:`InvalidInputError` *before*
anything is written, so a rejected call changes nothing.

Documented limits:

=====================  ==========================================
text                   1 - 32,768 characters, not only white space
kind                   ``[a-z][a-z0-9_-]{0,31}`` (default ``note``)
tags                   at most 32, each 1 - 64 characters
metadata               a JSON object, at most 65,536 bytes encoded, nested at most 32 deep
source                 at most 512 characters
query                  1 - 4,096 characters
k                      1 - 1,000
min_similarity         a finite number from -1 to 1
=====================  ==========================================

Every string (text, kind, tags, source, metadata keys and values, queries) must be valid
Unicode that encodes to UTF-8: a lone surrogate (``"\\ud800"``, legal in a JSON escape and in
a Python ``str``) is refused, since no UTF-8 output — an HTTP response, a terminal, an export
file — could ever carry it. Metadata must be plain JSON (objects with string keys, arrays,
strings, finite numbers, booleans, null) so that it reads back identically through every
interface; a value nested deeper than :data:`MAX_METADATA_DEPTH` is refused before it can
exhaust a parser's recursion limit anywhere downstream.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from .errors import InvalidInputError

MAX_TEXT_CHARS = 32_768
MAX_TAGS = 32
MAX_TAG_CHARS = 64
MAX_METADATA_BYTES = 65_536
MAX_SOURCE_CHARS = 512
MAX_QUERY_CHARS = 4_096
MAX_K = 1_000
MAX_METADATA_DEPTH = 32
#: The least a *new* store passphrase may have (a floor, not a strength estimate).
MIN_PASSPHRASE_CHARS = 8
_KIND = re.compile(r"[a-z][a-z0-9_-]{0,31}")
# Times are stored as float seconds since the epoch; these ends survive the round trip.
_EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def encodable(value: str, what: str) -> str:
    """``value`` if it encodes to UTF-8 (no lone surrogates), else InvalidInputError."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidInputError(
            f"{what} is not valid Unicode (a lone surrogate at character {e.start})"
        ) from None
    return value


def text(value: object, what: str = "text") -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string")
    encodable(value, what)
    if not value.strip():
        raise InvalidInputError(f"{what} may not be empty or only white space")
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidInputError(
            f"{what} has {len(value):,} characters; the limit is {MAX_TEXT_CHARS:,}"
        )
    return value


def query(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError("a query must be a non-empty string")
    encodable(value, "a query")
    if len(value) > MAX_QUERY_CHARS:
        raise InvalidInputError(f"a query may have at most {MAX_QUERY_CHARS:,} characters")
    return value


def kind(value: object) -> str:
    if not isinstance(value, str) or not _KIND.fullmatch(value):
        raise InvalidInputError(
            f"invalid kind {value!r}: use a lower-case word such as fact, episode, preference, note"
        )
    return value


def tags(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidInputError("tags must be a list of strings")
    out: list[str] = []
    for tag in value:
        if not isinstance(tag, str) or not tag.strip():
            raise InvalidInputError("each tag must be a non-empty string")
        encodable(tag, "a tag")
        tag = tag.strip()
        if len(tag) > MAX_TAG_CHARS:
            raise InvalidInputError(f"a tag may have at most {MAX_TAG_CHARS} characters")
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise InvalidInputError(f"a memory may have at most {MAX_TAGS} tags")
    return tuple(out)


def metadata(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError("metadata must be a JSON object (a dict)")
    _check_json(value, "metadata", 1)
    try:
        encoded = json.dumps(dict(value), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as e:
        raise InvalidInputError(f"metadata must be JSON-serialisable: {e}") from None
    if len(encoded.encode()) > MAX_METADATA_BYTES:
        raise InvalidInputError(f"metadata may be at most {MAX_METADATA_BYTES:,} bytes as JSON")
    result: dict[str, Any] = json.loads(encoded)
    return result


def _check_json(value: object, where: str, depth: int) -> None:
    """Plain JSON, nested at most MAX_METADATA_DEPTH deep, every string encodable. Iterative
    (an explicit stack), so a hostile depth cannot exhaust Python's recursion limit here."""
    stack: list[tuple[object, str, int]] = [(value, where, depth)]
    while stack:
        item, path, level = stack.pop()
        if level > MAX_METADATA_DEPTH:
            raise InvalidInputError(
                f"metadata may be nested at most {MAX_METADATA_DEPTH} levels deep"
            )
        if isinstance(item, str):
            encodable(item, path)
        elif isinstance(item, bool) or item is None or isinstance(item, int):
            continue
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidInputError(f"{path} must be a finite number (not NaN or infinity)")
        elif isinstance(item, Mapping):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise InvalidInputError(f"{path}: object keys must be strings")
                encodable(key, f"a key of {path}")
                stack.append((child, f"{path}.{key[:40]}", level + 1))
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{path}[{i}]", level + 1) for i, child in enumerate(item))
        else:
            raise InvalidInputError(f"{path} holds a {type(item).__name__}, which is not JSON")


def source(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_SOURCE_CHARS:
        raise InvalidInputError(f"source must be a string of at most {MAX_SOURCE_CHARS} characters")
    return encodable(value, "source")


def when(value: object, what: str = "time") -> datetime | None:
    """A timezone-aware datetime from a datetime or ISO-8601 string (naive means UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInputError(f"invalid {what} {value!r}: use ISO-8601") from None
    if not isinstance(value, datetime):
        raise InvalidInputError(f"{what} must be a datetime or an ISO-8601 string")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        # Stored as seconds since the epoch: the instant must exist in UTC.
        value.astimezone(UTC).timestamp()
    except (OverflowError, ValueError, OSError):
        raise InvalidInputError(f"{what} {value.isoformat()!r} is out of range") from None
    if not _EARLIEST <= value <= _LATEST:
        raise InvalidInputError(f"{what} must be between 0001-01-01 and 9999-12-31T23:59:59 UTC")
    return value


def k(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_K:
        raise InvalidInputError(f"k must be an integer from 1 to {MAX_K}")
    return value


def similarity(value: object, what: str = "min_similarity") -> float:
    """A cosine similarity threshold: a finite number from -1 to 1."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not -1.0 <= value <= 1.0
    ):
        raise InvalidInputError(f"{what} must be a number from -1 to 1")
    return float(value)


def new_passphrase(value: object) -> str:
    """A passphrase being set (at init or rotation): at least MIN_PASSPHRASE_CHARS characters
    besides white space. Existing passphrases are only ever tried, never judged."""
    if not isinstance(value, str):
        raise InvalidInputError("a passphrase must be a string")
    encodable(value, "the passphrase")
    if len(value.strip()) < MIN_PASSPHRASE_CHARS:
        raise InvalidInputError(
            f"a passphrase needs at least {MIN_PASSPHRASE_CHARS} characters; a few unrelated"
            " words are best"
        )
    return value


def memory_id(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInputError("a memory id must be a non-empty string")
    return encodable(value, "a memory id")
