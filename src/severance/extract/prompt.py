"""The extraction prompt: instructions, the persona's relevant memories, the new turns.

This is everything that leaves the machine for one call: the fixed instructions below, the
text (and ids) of the memories the persona's own recall found relevant, and the new turns
(speaker, time, text). Nothing else — no other persona, no tags or metadata, no key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

__all__ = ["INSTRUCTIONS", "Shown", "Turn", "build_messages", "retry_message"]

INSTRUCTIONS = """\
You maintain the long-term memory of one person's assistant. From the new conversation turns,
extract the durable facts and preferences worth remembering about the user and their world
(people, places, plans, possessions, likes). Skip small talk, questions and one-off requests.

Compare with the existing memories:
- a fact already known: answer nothing for it;
- a known fact that changed its value (e.g. moved city, new job): add the new fact and
  supersede the old memory with "by" set to the index of that add in your list;
- a known fact that is only refined or corrected: update it (give its id and the full new text);
- a known fact that is no longer true with no replacement: supersede it without "by".
Only use ids from the existing memories. Cite in "turns" the turn numbers each operation rests on.
Write each fact as one self-contained sentence.

Answer with JSON only, exactly this shape:
{"operations": [
  {"op": "add", "text": "...", "kind": "fact" or "preference", "turns": [0]},
  {"op": "update", "id": "...", "text": "...", "turns": [1]},
  {"op": "supersede", "id": "...", "by": 0, "turns": [1]},
  {"op": "none"}
]}"""


@dataclass(frozen=True)
class Turn:
    """One new turn as the prompt shows it; ``number`` is its position in the conversation."""

    number: int
    speaker: str
    at: datetime
    text: str


@dataclass(frozen=True)
class Shown:
    """An existing memory (or one proposed earlier in this run) shown to the extractor."""

    id: str
    text: str


def build_messages(turns: Sequence[Turn], shown: Sequence[Shown]) -> list[dict[str, str]]:
    """The chat messages of one extraction call."""
    lines = ["Existing memories (id: text):"]
    lines += [f"- {m.id}: {_one_line(m.text)}" for m in shown] or ["(none)"]
    lines += ["", "New conversation turns:"]
    lines += [
        f"[{t.number}] {t.speaker} ({t.at.isoformat(timespec='seconds')}): {_one_line(t.text)}"
        for t in turns
    ]
    return [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": "\n".join(lines)},
    ]


def retry_message(answer: str, problem: str) -> list[dict[str, str]]:
    """What is appended for the one retry after an invalid answer."""
    return [
        {"role": "assistant", "content": answer[:4000]},
        {
            "role": "user",
            "content": f"That answer was rejected: {problem}. Answer again with JSON only, "
            "in exactly the shape described.",
        },
    ]


def _one_line(text: str) -> str:
    # Keeps a turn from faking the prompt's own structure ("[7] user: ...", "- m_x: ...").
    return " ".join(text.split())
