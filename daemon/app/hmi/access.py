"""Sessions and login throttling of the station, in memory (no web library here).

A session is a random token in an HttpOnly, SameSite=Strict cookie, with its own CSRF token
that every action must repeat in a header: a page of another site can neither read the
cookie nor know the token. Sessions end with the daemon (a restart means logging in again)
and after ``SESSION_IDLE_S`` without a request. Failed logins are throttled per name and
per address: after ``FREE_FAILURES`` the next attempt must wait, doubling each time.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from daemon.app.hmi.users import User

SESSION_IDLE_S: Final = 8 * 3600.0  # a shift
SESSIONS_MAX: Final = 256  # beyond this the least recently used session is dropped
FREE_FAILURES: Final = 3
LOCKOUT_BASE_S: Final = 2.0
LOCKOUT_MAX_S: Final = 300.0
THROTTLE_KEYS_MAX: Final = 4096  # names and addresses remembered; the oldest forgotten


@dataclass
class Session:
    token: str
    csrf: str
    user: User
    seen: float


@dataclass
class _Failures:
    count: int = 0
    until: float = 0.0  # no attempt accepted before this (monotonic seconds)


@dataclass
class Sessions:
    now: Callable[[], float] = time.monotonic
    _by_token: dict[str, Session] = field(default_factory=dict)

    def open(self, user: User) -> Session:
        self._expire()
        while len(self._by_token) >= SESSIONS_MAX:
            oldest = min(self._by_token.values(), key=lambda s: s.seen)
            del self._by_token[oldest.token]
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), user, self.now())
        self._by_token[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        session = self._by_token.get(token)
        if session is None:
            return None
        if self.now() - session.seen > SESSION_IDLE_S:
            del self._by_token[token]
            return None
        session.seen = self.now()
        return session

    def close(self, token: str) -> None:
        self._by_token.pop(token, None)

    def _expire(self) -> None:
        now = self.now()
        for token in [t for t, s in self._by_token.items() if now - s.seen > SESSION_IDLE_S]:
            del self._by_token[token]


@dataclass
class Throttle:
    """Refuses login attempts too soon after repeated failures of the same name or address."""

    now: Callable[[], float] = time.monotonic
    _failures: dict[str, _Failures] = field(default_factory=dict)

    def wait_s(self, *keys: str) -> float:
        """How long before an attempt for ``keys`` is accepted (0: now)."""
        now = self.now()
        return max((f.until - now for k in keys if (f := self._failures.get(k))), default=0.0)

    def failed(self, *keys: str) -> None:
        now = self.now()
        for key in keys:
            f = self._failures.pop(key, None) or _Failures()
            f.count += 1
            if f.count >= FREE_FAILURES:
                delay = LOCKOUT_BASE_S * 2.0 ** (f.count - FREE_FAILURES)
                f.until = now + min(LOCKOUT_MAX_S, delay)
            self._failures[key] = f  # re-inserted: the dict's order is the age order
        while len(self._failures) > THROTTLE_KEYS_MAX:
            del self._failures[next(iter(self._failures))]

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)
