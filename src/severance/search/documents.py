"""What the index keeps of a memory, what a search may filter on, and what it returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .keyword import tokenize
from .query import has_time_expression, speaker_of

__all__ = ["Doc", "Filter", "Hit", "document"]


@dataclass(frozen=True, slots=True)
class Doc:
    """What the index keeps of one memory."""

    id: str
    seq: int
    kind: str
    tags: tuple[str, ...]
    occurred_at: float
    learned_at: float
    vector: npt.NDArray[np.float32]
    tokens: Sequence[str]
    #: The ``speaker`` of its metadata (re-ranking reads it; see :mod:`.query`).
    speaker: str | None = None
    #: Whether its text says when something happened (see :func:`.query.has_time_expression`).
    has_time: bool = False


def document(
    memory_id: str,
    seq: int,
    kind: str,
    tags: tuple[str, ...],
    occurred_at: float,
    learned_at: float,
    vector: npt.NDArray[np.float32],
    text: str,
    metadata: Mapping[str, Any],
) -> Doc:
    """What the index keeps of a memory, from its plaintext (tokens and re-ranking features
    are derived here, once, so a search never needs the text)."""
    return Doc(
        memory_id,
        seq,
        kind,
        tags,
        occurred_at,
        learned_at,
        vector,
        tokenize(text),
        speaker_of(metadata),
        has_time_expression(text),
    )


@dataclass(frozen=True, slots=True)
class Filter:
    kinds: frozenset[str] | None = None
    tags: frozenset[str] | None = None  # every tag must be present
    since: float | None = None  # occurred_at >= since
    until: float | None = None  # occurred_at < until


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    score: float
    dense_rank: int | None
    keyword_rank: int | None
    dense_score: float | None
    keyword_score: float | None
