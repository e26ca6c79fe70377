"""The per-slot columns a ranking reads, as a read-only view handed down by the index.

:class:`~severance.search.index.PersonaIndex` owns the layout of its arrays; fusion
(:mod:`.hybrid`), conversation context (:mod:`.context`) and query re-ranking
(:mod:`.query`) are functions over this view, so none of them imports the index (and the
index is the only module that knows how its slots are stored).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["NO_SPEAKER", "Columns", "SearchMode"]

SearchMode = Literal["hybrid", "dense", "keyword"]

#: ``speaker_codes`` of a memory without a speaker (``addressed_codes``: addressing no one).
NO_SPEAKER = -1


@dataclass(frozen=True, slots=True)
class Columns:
    """Slots ``0 .. n_slots`` of one index. Arrays may be longer than ``n_slots`` (they
    grow ahead); entries past it mean nothing. Nothing here may be modified."""

    n_slots: int
    seqs: npt.NDArray[np.int64]
    alive: npt.NDArray[np.bool_]
    kind_codes: npt.NDArray[np.int32]
    kind_names: Sequence[str]
    occurred: npt.NDArray[np.float64]
    #: Whether the memory's text says when something happened (see
    #: :func:`severance.search.query.has_time_expression`).
    has_time: npt.NDArray[np.bool_]
    #: Index into ``speaker_names`` of the memory's ``speaker`` metadata, or
    #: :data:`NO_SPEAKER`.
    speaker_codes: npt.NDArray[np.int32]
    speaker_names: Sequence[str]
    #: Lower-case word -> the codes in ``speaker_names`` of the names holding it (see
    #: :func:`severance.search.speakers.name_words`).
    named_by: Mapping[str, Sequence[int]]
    #: Index into ``speaker_names`` of the name the memory addresses someone by (see
    #: :func:`severance.search.speakers.vocative`), or :data:`NO_SPEAKER`.
    addressed_codes: npt.NDArray[np.int32]
    #: The live slot just before / after each live slot in conversation order (-1: none;
    #: see :class:`severance.search.context.SeqOrder`). Indexing either with -1 gives -1.
    before: npt.NDArray[np.int64]
    after: npt.NDArray[np.int64]

    def kind_codes_of(self, kinds: frozenset[str]) -> list[int]:
        """The codes of those of ``kinds`` that some slot has had."""
        return [i for i, name in enumerate(self.kind_names) if name in kinds]
