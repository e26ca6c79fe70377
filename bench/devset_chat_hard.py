"""The harder variant of the synthetic chats (``chat-hard``): what makes real chats harder.

:mod:`bench.devset_chat` plants signals a retrieval change can learn to exploit: every
storyline message has one wording, the owner closes a message with the other person's
nickname one time in seven, and nothing but filler competes with a storyline. Severance's
lead over BM25 on those chats (+0.33 recall@10) is far above what a held-out set of real
messaging-app chats showed (+0.08), so the variant takes the planted signals away:

* **paraphrased answers** — each storyline message is said in one of several wordings
  (:data:`PARAPHRASES`), most sharing fewer words with the question than the original;
* **names not repeated** — the owner addresses the other person by name one time in
  twenty-five, not one in seven;
* **noise** — more chit-chat per exchange, and **distractors**: messages about the same
  kinds of things with other details ("my mate got an interview at Lumora too", "our car's
  battery went last month"), which a bag of words cannot tell from the storyline;
* **multi-party** — about half the chats are group chats with a third person, who says
  filler and distractors.

Nothing here is random on its own: :func:`bench.devset_chat.generate` draws every choice from
its seeded generator (``hard=True``), so the set is the same for the same seed.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

__all__ = ["DISTRACTORS", "HARD_SEED", "PARAPHRASES", "distractor", "paraphrase"]

#: The seed of the ``chat-hard`` set (the plain ``chat`` set uses 17).
HARD_SEED = 29

#: Storyline message (the part of its key after the chat's tag) -> other wordings, formatted
#: with the storyline's slots (see ``_Plan.slots`` in :mod:`bench.devset_chat`).
PARAPHRASES: Mapping[str, tuple[str, ...]] = {
    "job.apply": (
        "sent my CV off to {company} for the {role} thing",
        "applied for that {role} role, fingers crossed",
        "just hit submit on the {company} application",
    ),
    "job.date": (
        "interview's on {job_day}!! eek",
        "they want to see me {job_day}",
        "got a call back, {job_day} it is",
    ),
    "job.interview": (
        "an hour of spreadsheet questions, my brain is mush",
        "they made me do excel tests live, so stressful",
        "survived. so many questions about formulas",
    ),
    "job.panel": (
        "four of them on the other side of the table",
        "it was a whole panel staring at me, I nearly died",
        "there were four interviewers, my hands were shaking",
    ),
    "job.offer": (
        "they rang!!! it's mine",
        "offer came through at lunch!!!",
        "I GOT IT. they phoned an hour ago",
    ),
    "job.first": (
        "starting tomorrow, what do I even wear",
        "first day tmrw, outfit crisis",
        "big day tomorrow, no idea what to put on",
    ),
    "job.blazer": (
        "wear the green blazer",
        "green blazer. final answer",
        "the green one, trust me",
    ),
    "trip.idea": (
        "might do a few days in {city}",
        "{city} for a long weekend? yes/no",
        "I really want to see {city}, maybe a long weekend",
    ),
    "trip.booked": (
        "done, flights sorted, 80 quid return",
        "tickets bought, 80 quid each way wasn't bad",
        "it's happening!! 80 quid flights",
    ),
    "trip.flat": (
        "airbnb above a bakery, old town",
        "a little place over a bakery near the old square",
        "we're over a bakery, the smell will kill me",
    ),
    "trip.arrive": (
        "landed!! it's beautiful here",
        "here!! the light is unreal",
        "made it, {city} is stunning",
    ),
    "trip.souvenir": (
        "picked up a painted tile for you at the market",
        "bought you a tiny tile, don't get excited",
        "you're getting a tile. from a market. be grateful",
    ),
    "hobby.start": (
        "I joined a {hobby} thing, {hobby_day} evenings",
        "starting {hobby} on {hobby_day}s!",
        "booked a {hobby} course, every {hobby_day}",
    ),
    "hobby.result": (
        "I actually managed {result}",
        "proud of myself, {result}",
        "guess who managed {result} ;)",
    ),
    "hobby.hard": (
        "{hard} is killing me, apparently I rush",
        "still bad at {hard}. too impatient says the teacher",
        "the teacher keeps telling me to slow down on {hard}",
    ),
    "pet.adopt": (
        "we're getting a rescue {animal}!!",
        "shelter said yes!! {animal} coming home soon",
        "we're adopting!! a little {animal}",
    ),
    "pet.name": ("we're calling it {pet}", "{pet}!! obviously", "meet {pet}"),
    "pet.vet": (
        "up all night at the animal hospital, {pet} swallowed a sock",
        "sock incident. {pet} at the emergency vet",
        "{pet} ate something he shouldn't, we're at the out of hours vet",
    ),
    "pet.cost": ("ok now but that was 400 quid", "all good, bill was 400 quid tho", "400 quid!!"),
    "health.symptom": ("pretty sure it's {symptom}", "ouch. {symptom} I think", "{symptom}, ugh"),
    "health.booked": (
        "got an appointment {health_day} morning",
        "{health_day} morning, first slot",
        "seeing them {health_day} am",
    ),
    "health.ok": (
        "nothing serious, just rest for two weeks",
        "fine! told to take it easy for a fortnight",
        "all good, two weeks off my feet",
    ),
    "taste.book": (
        "{book} done. sobbing on the bus",
        "just finished {book}, I'm wrecked",
        "{book} destroyed me",
    ),
    "taste.sad": (
        "if a book doesn't make me cry what's the point",
        "give me tragic or give me nothing",
        "happy endings bore me",
    ),
    "taste.dish": (
        "first attempt at {dish}, from scratch!",
        "cooked {dish} tonight, no jar",
        "{dish} from scratch, look at me",
    ),
    "taste.spicy": (
        "save me some, mild please, I'm a wimp with chilli",
        "I'd want it mild, chilli destroys me",
        "as long as there's no chilli in it",
    ),
    "gift.hint": (
        "(hint: {gift}) ;)",
        "not that I'm hinting but {gift}...",
        "I know you read this. {gift}. just saying",
    ),
    "car.died": (
        "broke down on the ring road, great",
        "stuck on the ring road, car won't start",
        "car gave up on the ring road",
    ),
    "car.part": ("garage says it's {part}", "mechanic reckons {part}", "{part}, apparently"),
}

#: Messages about the storylines' kinds of things with other details (slots with a 2 are
#: drawn afresh): what a bag of words cannot tell from a storyline message.
DISTRACTORS: tuple[str, ...] = (
    "my mate got an interview at {company2} too",
    "I had an interview once where they asked about spreadsheets for an hour",
    "my cousin just started as a {role2}, hates it already",
    "someone at work went to {city2} last year, said it was overrated",
    "booked flights for the summer, 200 quid, robbery",
    "my neighbour's {animal2} went to the vet again",
    "the shelter near us is full of {animal2}s",
    "the {clinic2} is useless, waited 2 hours",
    "I'm reading {book2}, it's fine I guess",
    "I made {dish2} once, never again",
    "our car's {part2} went too last month",
    "signed up for a {hobby2} class once, lasted a week",
    "my sister's birthday is coming up, no idea what to get",
    "the market was packed on saturday",
    "got a new blazer in the sale",
    "my flat is so cold, the landlord won't fix the heating",
    "I cried at an advert today, don't tell anyone",
    "the bakery on the corner closed down",
)


def paraphrase(rng: random.Random, key: str, slots: Mapping[str, str]) -> str | None:
    """Another wording of storyline message ``key`` (None: none written for it)."""
    options = PARAPHRASES.get(key)
    if not options:
        return None
    return rng.choice(options).format(**slots)


def distractor(rng: random.Random, pools: Mapping[str, tuple[str, ...]]) -> str:
    """One distractor, its slots drawn from ``pools`` (slot name -> values)."""
    template = rng.choice(DISTRACTORS)
    return template.format(**{name: rng.choice(values) for name, values in pools.items()})
