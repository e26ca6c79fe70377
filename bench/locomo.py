"""Loading LoCoMo (``locomo10.json``) into plain, typed records.

The data set is CC BY-NC 4.0 and is never copied into this repository: it is read from
``../shared/data/locomo/locomo10.json`` by default (relative to the repository root), from
``$SEVERANCE_LOCOMO`` if set, or from ``--locomo PATH``.

Evidence strings in the published file are not all well formed. :func:`parse_evidence` applies
these rules, and every deviation is recorded as an :class:`EvidenceIssue` so that nothing is
skipped silently:

* a string naming several turns (``"D8:6; D9:17"``, ``"D9:1 D4:4 D4:6"``) is split on ``;``,
  ``,`` and white space (``split``);
* a token in a near-miss format is normalised: ``"D:11:26"`` -> ``D11:26``, ``"D30:05"`` ->
  ``D30:5`` (``repaired``);
* a token that is not a turn id at all (``"D"``) is dropped (``malformed``);
* a well-formed id naming no turn of the conversation is dropped (``unknown_turn``);
* a duplicate id within one question is dropped (``duplicate``).

A question left with no evidence turn cannot be scored; it is counted (``no_evidence``) and
excluded from every metric.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "CATEGORY_NAMES",
    "SCORED_CATEGORIES",
    "Conversation",
    "EvidenceIssue",
    "LoCoMo",
    "Question",
    "Turn",
    "default_locomo_path",
    "load_locomo",
    "parse_evidence",
    "parse_session_datetime",
]

#: Category integers as used by the LoCoMo repository's ``task_eval/evaluation.py``.
CATEGORY_NAMES: dict[int, str] = {
    1: "multi-hop",
    2: "temporal",
    3: "open-domain",
    4: "single-hop",
    5: "adversarial",
}
#: Categories that make up the headline figures; 5 (adversarial) is reported apart.
SCORED_CATEGORIES: tuple[int, ...] = (1, 2, 3, 4)

ENV_VAR = "SEVERANCE_LOCOMO"
_REPO_ROOT = Path(__file__).resolve().parent.parent

_MONTHS = {
    name: i
    for i, name in enumerate(
        (
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
        ),
        start=1,
    )
}
_DATE_RE = re.compile(
    r"^\s*(\d{1,2}):(\d{2})\s*([ap])\.?m\.?\s+on\s+(\d{1,2})\s+([A-Za-z]+)\.?,?\s+(\d{4})\s*$",
    re.IGNORECASE,
)
_LOOSE_TURN_ID_RE = re.compile(r"^D:?0*(\d+):0*(\d+)$")
_EVIDENCE_SPLIT_RE = re.compile(r"[;,\s]+")
_SESSION_KEY_RE = re.compile(r"^session_(\d+)$")


@dataclass(frozen=True)
class Turn:
    """One utterance of a conversation."""

    dia_id: str
    speaker: str
    text: str
    caption: str | None
    session: int
    occurred_at: datetime

    @property
    def document(self) -> str:
        """What every system indexes: ``"Speaker: text"`` plus ``" [image: caption]"``."""
        doc = f"{self.speaker}: {self.text}"
        if self.caption:
            doc += f" [image: {self.caption}]"
        return doc


@dataclass(frozen=True)
class Question:
    """One QA item with its evidence resolved to existing turn ids."""

    qid: str
    question: str
    category: int
    evidence: tuple[str, ...]
    raw_evidence: tuple[str, ...]

    @property
    def scorable(self) -> bool:
        return bool(self.evidence)


@dataclass(frozen=True)
class EvidenceIssue:
    """A deviation from a clean evidence list, and what was done about it."""

    qid: str
    kind: str  # split | repaired | malformed | unknown_turn | duplicate | no_evidence
    raw: str
    resolved: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"qid": self.qid, "kind": self.kind, "raw": self.raw, "resolved": self.resolved}


@dataclass(frozen=True)
class Conversation:
    sample_id: str
    speakers: tuple[str, ...]
    turns: tuple[Turn, ...]
    questions: tuple[Question, ...]


@dataclass
class LoCoMo:
    """The loaded data set plus everything the loader had to repair or drop."""

    path: Path
    conversations: list[Conversation]
    issues: list[EvidenceIssue] = field(default_factory=list)

    def issue_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for issue in self.issues:
            counts[issue.kind] = counts.get(issue.kind, 0) + 1
        return dict(sorted(counts.items()))


def default_locomo_path() -> Path:
    """``$SEVERANCE_LOCOMO`` if set, else ``<repo>/../shared/data/locomo/locomo10.json``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return _REPO_ROOT.parent / "shared" / "data" / "locomo" / "locomo10.json"


def parse_session_datetime(raw: str) -> datetime:
    """Parse a LoCoMo session stamp such as ``"1:56 pm on 8 May, 2023"`` (taken as UTC)."""
    m = _DATE_RE.match(raw)
    if not m:
        raise ValueError(f"unrecognised LoCoMo date_time: {raw!r}")
    hour, minute, ampm, day, month_name, year = m.groups()
    month = _MONTHS.get(month_name.lower())
    if month is None:
        month = next((v for k, v in _MONTHS.items() if k.startswith(month_name.lower())), None)
    if month is None:
        raise ValueError(f"unrecognised month in LoCoMo date_time: {raw!r}")
    h = int(hour) % 12 + (12 if ampm.lower() == "p" else 0)
    return datetime(int(year), month, int(day), h, int(minute), tzinfo=UTC)


def parse_evidence(
    qid: str, raw_evidence: Iterable[Any], turn_ids: set[str]
) -> tuple[tuple[str, ...], list[EvidenceIssue]]:
    """Resolve a question's raw evidence list to existing turn ids (see the module doc)."""
    resolved: list[str] = []
    issues: list[EvidenceIssue] = []
    for raw in raw_evidence:
        raw_str = str(raw)
        tokens = [t for t in _EVIDENCE_SPLIT_RE.split(raw_str.strip()) if t]
        if len(tokens) > 1:
            issues.append(EvidenceIssue(qid, "split", raw_str, " ".join(tokens)))
        if not tokens:
            issues.append(EvidenceIssue(qid, "malformed", raw_str, None))
        for token in tokens:
            loose = _LOOSE_TURN_ID_RE.match(token)
            if loose is None:
                issues.append(EvidenceIssue(qid, "malformed", token, None))
                continue
            norm = f"D{int(loose.group(1))}:{int(loose.group(2))}"
            if norm != token:
                issues.append(EvidenceIssue(qid, "repaired", token, norm))
            if norm not in turn_ids:
                issues.append(EvidenceIssue(qid, "unknown_turn", norm, None))
            elif norm in resolved:
                issues.append(EvidenceIssue(qid, "duplicate", norm, None))
            else:
                resolved.append(norm)
    return tuple(resolved), issues


def _sessions(conv: dict[str, Any]) -> list[tuple[int, list[dict[str, Any]]]]:
    out = []
    for key, value in conv.items():
        m = _SESSION_KEY_RE.match(key)
        if m and isinstance(value, list):
            out.append((int(m.group(1)), value))
    return sorted(out)


def _load_conversation(item: dict[str, Any]) -> tuple[Conversation, list[EvidenceIssue]]:
    sample_id = str(item["sample_id"])
    conv = item["conversation"]
    turns: list[Turn] = []
    for session, raw_turns in _sessions(conv):
        when = parse_session_datetime(conv[f"session_{session}_date_time"])
        for t in raw_turns:
            turns.append(
                Turn(
                    dia_id=str(t["dia_id"]),
                    speaker=str(t["speaker"]),
                    text=str(t["text"]),
                    caption=(str(t["blip_caption"]) if t.get("blip_caption") else None),
                    session=session,
                    occurred_at=when,
                )
            )
    turn_ids = {t.dia_id for t in turns}
    if len(turn_ids) != len(turns):
        raise ValueError(f"{sample_id}: duplicate dia_id in conversation")
    questions: list[Question] = []
    issues: list[EvidenceIssue] = []
    for i, qa in enumerate(item.get("qa", [])):
        qid = f"{sample_id}#{i}"
        raw = tuple(str(e) for e in qa.get("evidence", []))
        evidence, q_issues = parse_evidence(qid, raw, turn_ids)
        issues.extend(q_issues)
        if not evidence:
            issues.append(EvidenceIssue(qid, "no_evidence", "; ".join(raw), None))
        questions.append(
            Question(
                qid=qid,
                question=str(qa["question"]),
                category=int(qa["category"]),
                evidence=evidence,
                raw_evidence=raw,
            )
        )
    speakers = (str(conv.get("speaker_a", "")), str(conv.get("speaker_b", "")))
    return Conversation(sample_id, speakers, tuple(turns), tuple(questions)), issues


def load_locomo(path: Path | str | None = None, *, only: Sequence[str] | None = None) -> LoCoMo:
    """Load ``locomo10.json`` (all conversations, or those whose ``sample_id`` is in ``only``)."""
    p = Path(path) if path is not None else default_locomo_path()
    if not p.is_file():
        raise FileNotFoundError(
            f"LoCoMo data not found at {p}; pass --locomo PATH or set ${ENV_VAR} "
            "(the file is locomo10.json from https://github.com/snap-research/locomo)"
        )
    items = json.loads(p.read_text(encoding="utf-8"))
    data = LoCoMo(path=p, conversations=[])
    for item in items:
        if only is not None and str(item["sample_id"]) not in only:
            continue
        conv, issues = _load_conversation(item)
        data.conversations.append(conv)
        data.issues.extend(issues)
    return data
