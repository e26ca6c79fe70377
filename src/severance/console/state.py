"""What one logged-in browser has woken: at most one persona, or one reintegration review.

A browser session holds one :class:`~severance.Session` at a time. Waking another persona,
starting an override or opening a reintegration review closes it first (its ``exit`` is
audited), so no page can show two personas' memories side by side — except the review, which
is the one place the issue calls for both, and which holds no session of its own: it keeps the
dry run's result and the secrets needed to run it, and forgets both when it is done.
"""

from __future__ import annotations

import contextlib
import secrets as random
import threading
from dataclasses import dataclass, field

from ..crossings import Reintegration, Selection
from ..errors import InvalidInputError, PersonaNotFoundError, SessionClosedError
from ..floors import Context
from ..keys import Secret
from ..model import utcnow
from ..session import Session
from ..store import Store

__all__ = ["CONSOLE_CLIENT", "BrowserState", "Review"]

#: The client name the console wakes personas as (recorded with each ``enter``).
CONSOLE_CLIENT = "console"


@dataclass
class Review:
    """A reintegration being reviewed: the dry run and what is needed to run it."""

    id: str
    source: str
    into: str
    mode: str
    selection: Selection
    # Never in a repr (a log line or a traceback must not carry a sealed persona's secret).
    source_secret: Secret | None = field(repr=False)
    into_secret: Secret | None = field(repr=False)
    plan: Reintegration = field(repr=False)
    #: Memory ids the reviewer has excluded so far.
    excluded: frozenset[str] = frozenset()
    #: The latest dry run of only the ticked memories (its counts are shown).
    counts: Reintegration | None = None
    #: Set once it ran: the result (and then the secrets are dropped).
    result: Reintegration | None = None


@dataclass
class BrowserState:
    """The persona (or review) one browser has open, plus one-shot messages for it."""

    store: Store
    _session: Session | None = None
    review: Review | None = None
    flashes: list[str] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # -- the awake persona --------------------------------------------------------------------
    @property
    def session(self) -> Session | None:
        """The awake session, or None (also once an override ran out or it was erased)."""
        with self._lock:
            s = self._session
            if s is None:
                return None
            if s.closed or (s.expires_at is not None and _expired(s)):
                ended = "override of " if s.expires_at is not None else "session of "
                self.flashes.append(f"The {ended}{s.persona} has ended; it is asleep again.")
                self._sleep()
                return None
            if not self._still_stored(s):
                # Erased by another process on the same store (the CLI's clean slate): its
                # session would go on showing an empty persona that no longer exists.
                self.flashes.append(
                    f"{s.persona} was erased (clean slate) elsewhere; nothing of it is left."
                )
                self._sleep()
                return None
            return s

    def _still_stored(self, s: Session) -> bool:
        try:
            return self.store.persona(s.persona).id == s.persona_id
        except PersonaNotFoundError:
            return False

    def wake(self, persona: str, floor: str, secret: Secret | None) -> Session:
        """Put the current persona to sleep and wake ``persona`` through its ``floor``."""
        with self._lock:
            self.drop_review()
            self._sleep()
            match = self.store.resolve(Context(floor=floor, client=CONSOLE_CLIENT))
            if match.persona != persona:
                # The floor changed hands since the page was drawn: wake nothing.
                raise InvalidInputError(f"floor {floor!r} does not wake persona {persona!r}")
            self._session = self.store.enter(
                Context(floor=floor, client=CONSOLE_CLIENT), secret=secret
            )
            return self._session

    def override(self, persona: str, reason: str, minutes: int, secret: Secret | None) -> Session:
        """Put the current persona to sleep and wake ``persona`` outside its floors."""
        with self._lock:
            self.drop_review()
            self._sleep()
            self._session = self.store.override(
                persona, reason=reason, minutes=minutes, secret=secret
            )
            return self._session

    def sleep(self) -> None:
        with self._lock:
            self._sleep()

    def sleep_if(self, session: Session) -> None:
        """Put ``session`` to sleep if it is still the awake one (a stale one is left alone).

        A request that began with one persona may fail after another tab woke a second one:
        its error must not put the second one to sleep.
        """
        with self._lock:
            if self._session is session:
                self._sleep()

    def _sleep(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            with contextlib.suppress(SessionClosedError):  # erased meanwhile
                session.close()

    # -- the reintegration review -------------------------------------------------------------
    def start_review(
        self,
        source: str,
        into: str,
        mode: str,
        selection: Selection,
        source_secret: Secret | None,
        into_secret: Secret | None,
    ) -> Review:
        """Dry-run a reintegration and keep it for review; the awake persona goes to sleep."""
        with self._lock:
            self.review = None
            plan = self.store.reintegrate(
                source,
                into,
                select=selection,
                mode="move" if mode == "move" else "copy",
                dry_run=True,
                source_secret=source_secret,
                into_secret=into_secret,
            )
            # Planned (so both secrets were right): now the one page with two personas opens,
            # and the awake persona goes to sleep.
            self._sleep()
            self.review = Review(
                id=random.token_urlsafe(12),
                source=source,
                into=into,
                mode=plan.mode,
                selection=selection,
                source_secret=source_secret,
                into_secret=into_secret,
                plan=plan,
            )
            return self.review

    def drop_review(self) -> None:
        with self._lock:
            self.review = None

    def close(self) -> None:
        with self._lock:
            self.drop_review()
            self._sleep()

    def flash(self, message: str) -> None:
        with self._lock:
            self.flashes.append(message)

    def take_flashes(self) -> list[str]:
        with self._lock:
            out, self.flashes = self.flashes, []
            return out


def _expired(session: Session) -> bool:
    assert session.expires_at is not None
    return utcnow() >= session.expires_at
