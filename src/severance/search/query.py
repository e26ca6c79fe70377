"""Query analysis: what a question asks beyond its words, and a light re-ranking that uses it.

The index ranks by meaning (dense) and words (BM25). Three generic signals of a question are
not captured by either, and :func:`rerank` applies them to the best fused candidates, from
features the index keeps per memory (whether its text carries time, its speaker, when it
occurred), so no candidate needs decrypting:

* **who** — a word of the question that names the speaker of a memory (its ``speaker``
  metadata, as :func:`severance.session.read_turns` records for conversation turns, else the
  ``"Name:"`` its text opens with: :func:`.speakers.speaker_of`). A question about what Ana
  did is most often answered by what Ana said. Words of the question are compared
  case-insensitively with the speaker's name, capitalised words only unless the whole question
  is lower case. A question may also call a speaker by a name the speaker field does not hold
  ("Kate" for "Katherine Moore"): the candidates' own messages tell, by the names they address
  each other by (:func:`.speakers.learn_aliases`; ``Fusion.speaker_aliases``).
* **when it was asked about** — a question asking *when* something happened or *how long ago*
  is answered by a memory that carries time: "yesterday", "last week", "in 2019", a weekday, a
  month. Such memories get a boost.
* **when it happened** — an absolute date in the question ("on 7 July, 2023", "in May 2023",
  "in 2021") favours memories whose ``occurred_at`` falls on that day (give or take
  :data:`DAY_SLACK` days), in that month or in that year.

Every boost multiplies a candidate's fused score by ``1 + boost`` (boosts add up), so they
re-order close candidates and never promote a memory from far down the list. Each is set on
:class:`severance.search.Fusion` and can be turned off (``0``) for comparison.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .columns import NO_SPEAKER, Columns, SearchMode
from .speakers import alias_codes

if TYPE_CHECKING:
    from .hybrid import Fusion

__all__ = [
    "DAY_SLACK",
    "DateSpec",
    "QueryAnalysis",
    "analyze",
    "has_time_expression",
    "on_dates",
    "rerank",
    "search_depth",
]

#: A day named in the question matches memories that occurred this many days before or after.
DAY_SLACK = 1

_MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_MONTH_OF = {name: i for i, name in enumerate(_MONTHS, start=1)} | {
    name[:3]: i for i, name in enumerate(_MONTHS, start=1) if name != "may"
}
_MONTH_OF["sept"] = 9
_MONTH = (
    r"(?P<month>january|february|march|april|may|june|july|august|september|october|november"
    r"|december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\.?"
)
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_IN = r"(?:in|during|since|until|by|of)\s+"

# Absolute dates, most specific first. Each match is removed before the next pattern runs.
# Only the fifth (a bare month) matches a text without digits.
_DATE_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        rf"\b{_DAY}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}\b",  # 7 July, 2023 / 7th of July 2023
        rf"\b{_MONTH}\s+{_DAY},?\s+{_YEAR}\b",  # July 7, 2023 / July 7th 2023
        r"\b(?P<year>(?:19|20)\d\d)-(?P<month>[01]?\d)-(?P<day>[0-3]?\d)\b",  # 2023-07-07
        rf"\b{_MONTH},?\s+{_YEAR}\b",  # July 2023
        # in July / during early July (a bare month needs a preposition: "may" is also a verb)
        rf"\b{_IN}(?:early\s+|mid-?\s*|late\s+)?{_MONTH}\b",
        rf"\b{_IN}{_YEAR}\b",  # in 2021
    )
)

# A question about when something happened or how long ago / how long it lasted.
_TEMPORAL_QUESTION = re.compile(
    r"\bwhen\b|\bhow\s+long\b|\bhow\s+many\s+(?:days|weeks|months|years)\b|\bsince\s+when\b"
    r"|\bwhat\s+(?:year|month|date|day|time|week|season)\b"
    r"|\bwhich\s+(?:year|month|date|day|week|season)\b",
    re.IGNORECASE,
)

# Time carried by a memory's text: relative expressions, weekdays, months, years, dates.
_TIME_EXPRESSION = re.compile(
    r"\b(?:yesterday|today|tonight|tomorrow|ago|recently|lately|weekend|"
    r"(?:last|next|this|past|coming|previous)\s+(?:\w+\s+)?"
    r"(?:night|morning|evening|week|weekend|month|year|summer|winter|spring|fall|autumn|"
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|time)|"
    r"mondays?|tuesdays?|wednesdays?|thursdays?|fridays?|saturdays?|sundays?|"
    r"january|february|march|april|june|july|august|september|october|november|december|"
    r"(?:19|20)\d\d|"
    r"\d+\s+(?:days?|weeks?|months?|years?)|"
    r"(?:a|one|two|three|four|five|six|few|couple\s+of)\s+(?:days?|weeks?|months?|years?))\b",
    re.IGNORECASE,
)

_WORD = re.compile(r"[^\W\d_][\w'’-]*", re.UNICODE)


@dataclass(frozen=True, slots=True)
class DateSpec:
    """A date named in a question: a year, a month (of any year when ``year`` is None) or a
    day. ``month`` and ``day`` are None when not given."""

    year: int | None
    month: int | None = None
    day: int | None = None

    def matches(self, when: datetime) -> bool:
        """Whether ``when`` (a memory's ``occurred_at``) falls within this date."""
        when = when.astimezone(UTC) if when.tzinfo is not None else when
        if self.day is not None and self.month is not None:
            year = self.year if self.year is not None else when.year
            try:
                target = date(year, self.month, self.day)
            except ValueError:
                return False
            return abs((when.date() - target).days) <= DAY_SLACK
        if self.year is not None and when.year != self.year:
            return False
        return self.month is None or when.month == self.month


@dataclass(frozen=True, slots=True)
class QueryAnalysis:
    """What :func:`analyze` found in a question."""

    query: str
    #: Lower-case words that may name a person (the question's capitalised words, or all of
    #: its words when it has no capital letter).
    names: frozenset[str]
    #: The question asks when something happened, or how long ago.
    temporal: bool
    #: Absolute dates named in the question.
    dates: tuple[DateSpec, ...]

    @property
    def has_signals(self) -> bool:
        return bool(self.names or self.temporal or self.dates)


def _strip_possessive(word: str) -> str:
    for suffix in ("'s", "’s", "'", "’"):
        if word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _dates(query: str) -> tuple[DateSpec, ...]:
    found: list[DateSpec] = []
    rest = query
    # Every pattern but the bare month needs a digit: most questions have none.
    digits = any(ch.isdigit() for ch in query)
    for pattern in _DATE_PATTERNS if digits else _DATE_PATTERNS[4:5]:
        for m in pattern.finditer(rest):
            groups = m.groupdict()
            month_name = groups.get("month")
            month: int | None = None
            if month_name is not None:
                month = (
                    int(month_name)
                    if month_name.isdigit()
                    else _MONTH_OF.get(month_name.lower().rstrip("."))
                )
                if month is None or not 1 <= month <= 12:
                    continue
            day = int(groups["day"]) if groups.get("day") else None
            if day is not None and not 1 <= day <= 31:
                continue
            year = int(groups["year"]) if groups.get("year") else None
            found.append(DateSpec(year, month, day))
        rest = pattern.sub(" ", rest)
    return tuple(dict.fromkeys(found))


def analyze(query: str) -> QueryAnalysis:
    """Find the names, the temporal intent and the dates of a question."""
    words = [_strip_possessive(w) for w in _WORD.findall(query)]
    lower_only = not any(ch.isupper() for ch in query)
    names = frozenset(w.lower() for w in words if len(w) > 1 and (lower_only or w[0].isupper()))
    return QueryAnalysis(
        query=query,
        names=names,
        temporal=_TEMPORAL_QUESTION.search(query) is not None,
        dates=_dates(query),
    )


def has_time_expression(text: str) -> bool:
    """Whether a memory's text says when something happened (relative or absolute)."""
    return _TIME_EXPRESSION.search(text) is not None


def _utc_seconds(when: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Whole UTC seconds of epoch times, rounded to the microsecond first (half to even) as
    :meth:`datetime.fromtimestamp` rounds them, so that both agree on the day of a time a
    hair before midnight."""
    frac, whole = np.modf(when)
    micro = np.round(frac * 1e6)
    seconds: npt.NDArray[np.int64] = (whole + np.floor(micro / 1e6)).astype(np.int64)
    return seconds


def on_dates(dates: Sequence[DateSpec], when: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Whether each of ``when`` (epoch seconds) falls within one of ``dates``: what
    :meth:`DateSpec.matches` says of ``datetime.fromtimestamp(t, UTC)``, for an array."""
    out = np.zeros(len(when), dtype=np.bool_)
    if not len(when) or not dates:
        return out
    day = (_utc_seconds(when) // 86400).astype("datetime64[D]")
    year = day.astype("datetime64[Y]").astype(np.int64) + 1970
    month = day.astype("datetime64[M]").astype(np.int64) % 12 + 1
    for spec in dates:
        if spec.day is not None and spec.month is not None:
            # Of the year named, else of each memory's own year.
            for y in [spec.year] if spec.year is not None else np.unique(year).tolist():
                try:
                    target = np.datetime64(date(y, spec.month, spec.day), "D")
                except ValueError:
                    continue
                near = np.abs((day - target).astype(np.int64)) <= DAY_SLACK
                out |= near if spec.year is not None else near & (year == y)
            continue
        hit = np.ones(len(when), dtype=np.bool_)
        if spec.year is not None:
            hit &= year == spec.year
        if spec.month is not None:
            hit &= month == spec.month
        out |= hit
    return out


def rerank(
    analysis: QueryAnalysis,
    cols: Columns,
    slots: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float64],
    fusion: Fusion,
) -> npt.NDArray[np.float64]:
    """The re-ranked score of each of ``slots`` (fused ``scores``, in the order given), read
    from the index's per-slot features: no memory needs decrypting."""
    boost = np.zeros(len(slots), dtype=np.float64)
    if fusion.speaker_boost and analysis.names:
        # "I" or a name that is also a common capitalised word is harmless: it only matches
        # a memory whose speaker is called that.
        names = cols.speaker_names
        named = np.zeros(len(names), dtype=np.bool_)
        for word in analysis.names:
            codes_named = cols.named_by.get(word)
            if codes_named:
                named[codes_named] = True
        codes = cols.speaker_codes[slots]
        # A question may call a speaker by a name the speaker field does not hold ("Kate"
        # for "Katherine Moore"): the names the candidates address each other by tell.
        if fusion.speaker_aliases:
            in_order = slots[np.lexsort((cols.seqs[slots], cols.occurred[slots]))]
            aliases = alias_codes(cols.speaker_codes[in_order], cols.addressed_codes[in_order])
            for code, words in aliases.items():
                if any(names[w] in analysis.names for w in words):
                    named[code] = True
        has = codes != NO_SPEAKER
        hit = np.zeros(len(slots), dtype=np.bool_)
        hit[has] = named[codes[has]]
        boost[hit] += fusion.speaker_boost
    if fusion.time_boost and analysis.temporal:
        boost[cols.has_time[slots]] += fusion.time_boost
    if fusion.date_boost and analysis.dates:
        boost[on_dates(analysis.dates, cols.occurred[slots])] += fusion.date_boost
    result: npt.NDArray[np.float64] = scores + boost * np.abs(scores)
    return result


def search_depth(k: int, fusion: Fusion, mode: SearchMode) -> int:
    """How many fused results to rank so that re-ranking can choose the best ``k``."""
    if mode != "hybrid" or not fusion.reranks:
        return k
    return max(k, fusion.rerank_depth)
