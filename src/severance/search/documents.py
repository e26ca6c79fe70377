"""What the index keeps of a memory, what a search may filter on, and what it returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .identity import identity_key
from .keyword import tokenize
from .query import has_time_expression
from .speakers import speaker_of, vocative

__all__ = ["FEATURES_VERSION", "Doc", "Filter", "Hit", "document", "features"]

#: Version of the rules :func:`features` applies (speaker names, time expressions, vocatives,
#: in :mod:`.speakers` and :mod:`.query`). Index snapshots record it; a snapshot from other
#: rules has its features read again from the rows on wake. Bump it whenever those rules
#: change what they find for some text.
FEATURES_VERSION = 1


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
    #: Who said it: the ``speaker`` of its metadata, else a ``"Name:"`` its text opens with
    #: (re-ranking reads it; see :mod:`.query` and :func:`.speakers.speaker_of`).
    speaker: str | None = None
    #: Whether its text says when something happened (see :func:`.query.has_time_expression`).
    has_time: bool = False
    #: The name it addresses its listener by, if any (see :func:`.speakers.vocative`).
    addressed: str | None = None
    #: Its :func:`.identity.identity_key` (:data:`.identity.NO_KEY`: not known), where the
    #: duplicate check finds its leads.
    identity: int = 0


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
    are derived here, once, so a search never needs the text; so is its identity key)."""
    speaker, has_time, addressed = features(text, metadata)
    return Doc(
        memory_id,
        seq,
        kind,
        tags,
        occurred_at,
        learned_at,
        vector,
        tokenize(text),
        speaker,
        has_time,
        addressed,
        identity_key(text, kind, tags, metadata),
    )


def features(text: str, metadata: Mapping[str, Any]) -> tuple[str | None, bool, str | None]:
    """The re-ranking features of a memory: its speaker, whether it says when, and the name
    it addresses someone by."""
    speaker = speaker_of(text, metadata)
    return speaker, has_time_expression(text), vocative(text, speaker)


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
