"""The leak counters: what a probe's answer reveals of the victims' memories.

A leak is counted per victim memory, never per call: a memory returned by ten searches is
one leaked item. Reads are judged by the canaries in the answer (:func:`canaries_in`);
writes by what the victim sees afterwards through its own handle; counts by how far a
reported total exceeds what the caller's own scope holds; existence oracles by whether the
answer for a victim's id differs from the answer for an id that exists nowhere; files by
the canaries in their bytes. Every leak keeps the exact call and a piece of the answer.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.isolation.plants import TOPICS, FileHit, Plant, revealed_in

__all__ = [
    "VECTORS",
    "Leak",
    "Outcome",
    "Tally",
    "TimingResult",
    "mann_whitney_u",
    "same_answer",
    "summarize",
    "timing_oracle",
]

#: (key, title) of the eight vectors, in report order.
VECTORS: tuple[tuple[str, str], ...] = (
    ("search", "1 search"),
    ("ids", "2 ids"),
    ("listing", "3 listing"),
    ("oracles", "4 oracles"),
    ("forgotten", "5 forgotten filter"),
    ("residue", "6 deletion residue"),
    ("at_rest", "7 at rest"),
    ("servers", "8 servers"),
)
_VECTOR_KEYS = frozenset(k for k, _ in VECTORS)
_EVIDENCE_CHARS = 300
_MAX_SHAPES = 60
# Ids, canaries and topic sentences vary per call; masked, the calls group by operation.
_SHAPE_RE = re.compile(
    r"(?:id|t|m)?cnry[0-9a-f]{12}|\bm_[0-9a-z]{20}\b|\bps_[0-9a-z]{20}\b"
    r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|id[0-9a-f]{32}"
)
_TOPIC_RE = re.compile(
    r"(?:overwritten-by-the-work-(?:handle|pass) )?(?:"
    + "|".join(re.escape(t) for ts in TOPICS.values() for t in ts)
    + r")(?: \(ref <…>\))?"
)


@dataclass(frozen=True)
class Outcome:
    """What one call answered: ``kind`` is ``ok``, an error type, or an HTTP status."""

    kind: str
    text: str

    @property
    def ok(self) -> bool:
        return self.kind == "ok" or self.kind.startswith("2")


def same_answer(a: Outcome, b: Outcome, *, ids: Sequence[str]) -> bool:
    """Whether two answers are the same once the ids asked about are masked out."""

    def masked(text: str) -> str:
        for ident in ids:
            if ident:
                text = text.replace(ident, "<id>")
        # Request ids, timings and the like differ between any two calls.
        return re.sub(r"\b[0-9a-f]{32}\b|\b\d+\.\d+\s*(ms|s)\b", "<var>", text)

    return a.kind == b.kind and masked(a.text) == masked(b.text)


@dataclass
class Leak:
    call: str
    items: tuple[str, ...]
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return {"call": self.call, "items": list(self.items), "evidence": self.evidence}


@dataclass
class VectorTally:
    applicable: bool = True
    not_run: bool = False
    probes: int = 0
    keys: set[str] = field(default_factory=set)
    counted: int = 0  # victims revealed only as a number (a count, a total)
    leaks: list[Leak] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    shapes: dict[str, int] = field(default_factory=dict)  # masked call -> times made

    def saw(self, call: str) -> None:
        self.probes += 1
        shape = _TOPIC_RE.sub("<topic>", _SHAPE_RE.sub("<…>", call))
        if shape in self.shapes or len(self.shapes) < _MAX_SHAPES:
            self.shapes[shape] = self.shapes.get(shape, 0) + 1

    @property
    def leaked(self) -> int:
        return max(len(self.keys), self.counted)


def _excerpt(text: str, keys: Iterable[str]) -> str:
    """The answer around its first canary (or its start), at most a few hundred characters."""
    first = min((i for k in keys if (i := text.find(k)) >= 0), default=0)
    start = max(0, first - _EVIDENCE_CHARS // 3)
    piece = text[start : start + _EVIDENCE_CHARS].replace("\n", " ")
    return ("…" if start else "") + piece + ("…" if start + _EVIDENCE_CHARS < len(text) else "")


class Tally:
    """The counters of one system: eight vectors, each with its probes and leaks."""

    def __init__(self, victims: Iterable[Plant]) -> None:
        self.victims: dict[str, Plant] = {p.key: p for p in victims}
        self.vectors: dict[str, VectorTally] = {k: VectorTally() for k, _ in VECTORS}

    def _v(self, vector: str) -> VectorTally:
        if vector not in _VECTOR_KEYS:
            raise KeyError(f"unknown vector {vector!r}")
        return self.vectors[vector]

    def na(self, vector: str, why: str) -> None:
        """The system's design has no scope for this vector (reported as n/a, not zero)."""
        v = self._v(vector)
        v.applicable = False
        v.notes.append(why)

    def not_run(self, vector: str, why: str) -> None:
        """The vector applies but could not be measured here (reported as "not run")."""
        v = self._v(vector)
        v.not_run = True
        v.notes.append(why)

    def note(self, vector: str, text: str) -> None:
        self._v(vector).notes.append(text)

    def _record(self, vector: str, call: str, keys: set[str], evidence: str) -> set[str]:
        v = self._v(vector)
        v.saw(call)
        if keys:
            v.keys |= keys
            v.leaks.append(Leak(call, tuple(sorted(keys)), evidence))
        return keys

    def read(self, vector: str, call: str, answer: Outcome | str) -> set[str]:
        """A read: the victims its answer reveals (echoes of the call's input aside)."""
        text = answer.text if isinstance(answer, Outcome) else answer
        found = revealed_in(text, call, self.victims.values())
        return self._record(vector, call, found, _excerpt(text, found))

    def changed(self, vector: str, call: str, keys: Iterable[str], evidence: str) -> set[str]:
        """A write: ``keys`` are victim memories the victim now sees changed or gone."""
        found = set(keys) & set(self.victims)
        return self._record(vector, call, found, evidence[:_EVIDENCE_CHARS])

    def counted(self, vector: str, call: str, reported: int, own: int) -> int:
        """A count or total: what exceeds the caller's own memories counts victims."""
        v = self._v(vector)
        v.saw(call)
        excess = max(0, min(reported - own, len(self.victims)))
        if excess:
            v.counted = max(v.counted, excess)
            v.leaks.append(
                Leak(call, (), f"reported {reported}; the caller's own scope holds {own}")
            )
        return excess

    def oracle(
        self,
        call: str,
        victim: Plant,
        theirs: Outcome,
        nobodys: Outcome,
        *,
        ids: Sequence[str],
        vector: str = "oracles",
    ) -> bool:
        """An existence oracle: the answer for a victim's id against one for no such id."""
        differs = not same_answer(theirs, nobodys, ids=ids)
        evidence = f"victim's id -> {theirs.kind}: {theirs.text[:140]!r}; no such id -> " + (
            f"{nobodys.kind}: {nobodys.text[:140]!r}"
        )
        self._record(vector, call, {victim.key} if differs else set(), evidence)
        return differs

    def timing(
        self,
        call: str,
        victims: Iterable[Plant],
        result: TimingResult,
        *,
        vector: str = "oracles",
    ) -> None:
        """A timing oracle: a significant difference reveals every victim id it was run on."""
        keys = {p.key for p in victims} if result.significant else set()
        self._record(vector, call, keys, result.describe())
        self.note(vector, f"timing of {call}: {result.describe()}")

    def files(self, vector: str, phase: str, hits: Sequence[FileHit]) -> set[str]:
        """A scan of the system's files: victims' canaries found in their bytes."""
        keys = set().union(*(h.keys for h in hits)) & set(self.victims) if hits else set()
        evidence = "; ".join(f"{h.path}: {len(h.keys & set(self.victims))}" for h in hits[:6])
        return self._record(vector, phase, keys, evidence)

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, _title in VECTORS:
            v = self.vectors[key]
            if not v.applicable or v.not_run:
                out[key] = {
                    "leaked": None,
                    "status": "n/a" if not v.applicable else "not run",
                    "probes": v.probes,
                    "notes": v.notes,
                    "leaks": [],
                }
                continue
            out[key] = {
                "leaked": v.leaked if v.probes else None,
                "status": "measured" if v.probes else "not run",
                "probes": v.probes,
                "calls": v.shapes,
                "notes": v.notes,
                "leaks": [leak.to_dict() for leak in v.leaks],
            }
        return out


# -- timing -----------------------------------------------------------------------------------
def mann_whitney_u(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test (normal approximation, ties corrected).

    Hand-written rather than taken from SciPy: the Severance rows of the benchmark run in the
    test suite, which installs no SciPy, and the test is twenty lines.
    """
    n1, n2 = len(a), len(b)
    if n1 < 2 or n2 < 2:
        raise ValueError("each sample needs at least two observations")
    pooled = sorted([(x, 0) for x in a] + [(x, 1) for x in b])
    ranks = [0.0] * len(pooled)
    ties = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        for m in range(i, j + 1):
            ranks[m] = (i + j) / 2 + 1
        t = j - i + 1
        ties += t**3 - t
        i = j + 1
    r1 = sum(r for r, (_, g) in zip(ranks, pooled, strict=True) if g == 0)
    u1 = r1 - n1 * (n1 + 1) / 2
    mean = n1 * n2 / 2
    n = n1 + n2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:
        return 1.0
    z = (abs(u1 - mean) - 0.5) / math.sqrt(var)
    return max(0.0, min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2))))


@dataclass(frozen=True)
class TimingResult:
    reps: int
    median_victim_us: float
    median_absent_us: float
    p_value: float
    alpha: float
    min_ratio: float

    @property
    def ratio(self) -> float:
        lo = min(self.median_victim_us, self.median_absent_us)
        return max(self.median_victim_us, self.median_absent_us) / lo if lo > 0 else math.inf

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha and self.ratio >= self.min_ratio

    def describe(self) -> str:
        return (
            f"{self.reps} interleaved pairs; median {self.median_victim_us:.1f} µs (victim's id) "
            f"vs {self.median_absent_us:.1f} µs (no such id); Mann-Whitney U p = "
            f"{self.p_value:.3g}; {'DISTINGUISHES' if self.significant else 'no difference'} "
            f"(threshold p < {self.alpha} and medians {self.min_ratio:.2f}x apart)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "reps": self.reps,
            "median_victim_us": self.median_victim_us,
            "median_absent_us": self.median_absent_us,
            "p_value": self.p_value,
            "significant": self.significant,
        }


def timing_oracle(
    victim: Sequence[float],
    absent: Sequence[float],
    *,
    alpha: float = 0.001,
    min_ratio: float = 1.10,
) -> TimingResult:
    """Judge timings (seconds) of the same call on a victim's id and on an absent id."""
    return TimingResult(
        reps=min(len(victim), len(absent)),
        median_victim_us=statistics.median(victim) * 1e6,
        median_absent_us=statistics.median(absent) * 1e6,
        p_value=mann_whitney_u(victim, absent),
        alpha=alpha,
        min_ratio=min_ratio,
    )


def summarize(results: Mapping[str, Any]) -> dict[str, int | None]:
    """Vector -> leaked items (None for n/a or not measured) of one system's result."""
    return {k: results[k]["leaked"] for k, _ in VECTORS if k in results}
