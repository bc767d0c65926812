"""Server-side web sessions and the login rate limit (pure: time is given)."""

from __future__ import annotations

import os
import secrets
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class WebSession:
    user: str
    csrf: str
    last: float  # monotonic time of the last request
    playing: dict[int, tuple[int, int, str]] = field(default_factory=dict)  # recording id -> (fd, size, type)

    def close(self) -> None:
        for fd, _size, _type in self.playing.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.playing.clear()


class Sessions:
    """Tokens to sessions; a session unused for `idle_s` is gone."""

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self._by_token: dict[str, WebSession] = {}

    def open(self, user: str, now: float) -> tuple[str, WebSession]:
        token = secrets.token_urlsafe(32)
        session = self._by_token[token] = WebSession(user, secrets.token_urlsafe(24), now)
        return token, session

    def get(self, token: str | None, now: float) -> WebSession | None:
        session = self._by_token.get(token or "")
        if session is None:
            return None
        if now - session.last > self.idle_s:
            self.drop(token)
            return None
        session.last = now
        return session

    def drop(self, token: str | None) -> WebSession | None:
        session = self._by_token.pop(token or "", None)
        if session is not None:
            session.close()
        return session


class RateLimit:
    """At most `per_user` failed logins for a user name, and `per_address` from an address (an office shares
    one), in `window_s`."""

    def __init__(self, per_user: int = 5, per_address: int = 20, window_s: float = 300) -> None:
        self.per_user, self.per_address, self.window_s = per_user, per_address, window_s
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def blocked(self, keys: list[str], now: float) -> bool:
        for key in keys:
            seen = self._failures[key]
            while seen and now - seen[0] > self.window_s:
                seen.popleft()
            if len(seen) >= (self.per_address if key.startswith("address:") else self.per_user):
                return True
        return False

    def failed(self, keys: list[str], now: float) -> None:
        for key in keys:
            self._failures[key].append(now)

    def passed(self, keys: list[str]) -> None:
        for key in keys:
            self._failures.pop(key, None)


def plain(value: Any) -> str:
    return str(value or "").strip()
