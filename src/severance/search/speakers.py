"""Who said a memory, and the other names people call each other by, learned from the text.

A question names people the way people talk ("When did Kate get the job?"), while a memory
names its speaker the way an app exports it (``speaker`` metadata ``"Katherine Moore"``, or a
``"Katherine Moore: ..."`` line when the caller stored plain text). Two generic rules close
the gap without a list of nicknames:

* :func:`speaker_of` — the ``speaker`` metadata, else a leading ``"Name:"`` of the text (what
  chat exports and transcripts look like), else nobody;
* :func:`learn_aliases` — a capitalised word used to *address* someone ("good luck today
  Kate!!", "Hey Mel, ...", "thanks Jo") names the person spoken to: the nearest other speaker
  before or after that message. A word so used at least twice, and at least 75% of the time
  for one speaker, is an alias of that speaker.

The query re-ranking (:mod:`.query`) learns aliases from the candidates it has decrypted
anyway, so nothing is stored and every ranking is computed from the memories alone.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from .keyword import tokenize

__all__ = [
    "address_tokens",
    "alias_codes",
    "learn_aliases",
    "name_words",
    "speaker_of",
    "vocative",
]

_WORD = re.compile(r"[^\W\d_][\w'’-]*", re.UNICODE)
# "Ana:", "Katherine Moore:", "Dr. O'Neill:": one to four capitalised words before a colon.
SPEAKER_PREFIX = re.compile(r"^\s*((?:[A-Z][\w.'’-]*)(?: [A-Z][\w.'’-]*){0,3})\s*:\s")
# Labels that open notes the same way without naming anyone.
_LABELS = frozenset(
    {
        "note", "notes", "reminder", "todo", "update", "re", "fwd", "fw", "subject", "summary",
        "question", "answer", "q", "a", "tip", "warning", "important", "fyi", "ps", "edit",
        "idea", "task", "done", "status", "result", "results", "source", "quote", "example",
    }
)  # fmt: skip
_NAME = r"([A-Z][a-z]{1,15})"
# A name closing a message ("ok Kate", "love you Jo x"), opening it before a comma ("Mel,
# ..."), or after a greeting or thanks ("hey Sam", "good luck Ben").
VOCATIVES: tuple[re.Pattern[str], ...] = (
    re.compile(rf"\b{_NAME}[\s!?.,:;)x]*$"),
    re.compile(rf"^(?:(?i:hey|hi|hello|thanks|thank you|love you|oh)\s*,?\s+)?{_NAME}\s*[,!]"),
    re.compile(
        rf"\b(?i:hey|hi|hello|thanks|thank you|congrats|luck|night|morning)\s*,?\s+{_NAME}\b"
    ),
)
# Capitalised words that open or close messages without naming anyone.
_NOT_NAMES = frozenset(
    {
        "I", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
        "January", "February", "March", "April", "May", "June", "July", "August", "September",
        "October", "November", "December", "OK", "Ok", "Yes", "No", "Lol", "Omg", "Haha", "Hey",
        "Hi", "Thanks", "Good", "Oh", "Wow", "The", "A", "So", "And", "But",
    }
)  # fmt: skip
#: A speaker, however the caller names them (a name, an index code).
S = TypeVar("S", bound=Hashable)
#: An alias must be used this many times, and this share of its uses for one speaker.
MIN_USES = 2
MIN_SHARE = 0.75


def name_words(name: str) -> frozenset[str]:
    """The lower-case words of a name (one-letter words dropped)."""
    return frozenset(w.lower() for w in _WORD.findall(name) if len(w) > 1)


def speaker_of(text: str, metadata: Mapping[str, Any]) -> str | None:
    """The memory's ``speaker`` metadata, else the ``"Name:"`` its text opens with."""
    speaker = metadata.get("speaker")
    if isinstance(speaker, str) and speaker.strip():
        return speaker
    m = SPEAKER_PREFIX.match(text)
    if m is None or m.group(1).lower() in _LABELS or any(c.isdigit() for c in m.group(1)):
        return None
    return m.group(1)


def vocative(text: str, speaker: str | None) -> str | None:
    """The name (lower case) a message addresses its listener by, if it does: "ok Kate",
    "Hey Mel, ...", "good luck Jo!". A name in the ``"Name:"`` prefix does not count."""
    if speaker is not None:
        m = SPEAKER_PREFIX.match(text)
        if m and m.group(1) == speaker:
            text = text[m.end() :]
    for pattern in VOCATIVES:
        for word in pattern.findall(text):
            if word not in _NOT_NAMES:
                return str(word).lower()
    return None


def learn_aliases(
    speakers: Sequence[S | None], vocatives: Sequence[str | None]
) -> dict[S, frozenset[str]]:
    """Speaker -> the names others address them by, from messages in conversation order
    (each message's speaker and :func:`vocative`)."""
    counts: dict[str, Counter[S]] = {}
    n = len(speakers)
    for i, (who, word) in enumerate(zip(speakers, vocatives, strict=True)):
        if who is None or word is None:
            continue
        to = next(
            (
                speakers[j]
                for j in (i - 1, i + 1, i - 2, i + 2)
                if 0 <= j < n and speakers[j] is not None and speakers[j] != who
            ),
            None,
        )
        if to is not None:
            counts.setdefault(word, Counter())[to] += 1
    out: dict[S, set[str]] = {}
    for word, by in counts.items():
        speaker, c = by.most_common(1)[0]
        if c >= MIN_USES and c >= MIN_SHARE * sum(by.values()):
            out.setdefault(speaker, set()).add(word)
    return {s: frozenset(v) for s, v in out.items()}


#: Where :func:`learn_aliases` looks for the person a message speaks to, nearest first.
_LISTENER_OFFSETS = (-1, 1, -2, 2)


def alias_codes(
    speakers: npt.NDArray[np.int32], vocatives: npt.NDArray[np.int32]
) -> dict[int, set[int]]:
    """:func:`learn_aliases` over codes (speaker code -> codes of the names others address
    them by), for messages in conversation order given as arrays of codes (negative: no
    speaker, no vocative). The same rules; only the messages that address someone are
    visited (most of a search's candidates address nobody), with plain dicts for the counts
    (measured: 4-8x quicker than array operations or a Counter per message on the hundred
    candidates of a search)."""
    n = len(speakers)
    messages = np.flatnonzero((speakers >= 0) & (vocatives >= 0)).tolist()
    if not messages:
        return {}
    said_by: list[int] = speakers.tolist()
    words: list[int] = vocatives.tolist()
    counts: dict[int, dict[int, int]] = {}
    for i in messages:
        who = said_by[i]
        for offset in _LISTENER_OFFSETS:
            j = i + offset
            if 0 <= j < n and said_by[j] >= 0 and said_by[j] != who:
                by = counts.setdefault(words[i], {})
                by[said_by[j]] = by.get(said_by[j], 0) + 1
                break
    out: dict[int, set[int]] = {}
    for word, by in counts.items():
        # A winner takes >= 75% of the uses, so no other listener ties with it.
        to, c = max(by.items(), key=lambda item: item[1])
        if c >= MIN_USES and c >= MIN_SHARE * sum(by.values()):
            out.setdefault(to, set()).add(word)
    return out


def address_tokens(names: Sequence[str]) -> dict[str, list[int]]:
    """Keyword token -> the indices of ``names`` that are one word of that token: the names
    :func:`vocative` finds ("kate"), as the keyword index spells them."""
    out: dict[str, list[int]] = {}
    for code, name in enumerate(names):
        tokens = tokenize(name)
        if len(tokens) == 1 and " " not in name.strip():
            out.setdefault(tokens[0], []).append(code)
    return out
