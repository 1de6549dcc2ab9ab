"""Per-account request rate limit: a token bucket per key, in this process's memory.

A bucket holds `per_minute` requests and refills continuously, so a client may burst up to
the limit and then proceeds at the sustained rate. With N API processes each keeps its own
buckets (the effective limit is N x per_minute); that is the price of needing no shared
state on the hot path, and is stated in docs/api.md.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    retry_after: int  # whole seconds until one request is allowed again (0 when allowed)
    reset: int  # unix time when the bucket is full again

    def headers(self) -> dict[str, str]:
        out = {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
               "X-RateLimit-Reset": str(self.reset)}
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after)
        return out


class RateLimiter:
    """`per_minute` <= 0 disables limiting (every call allowed)."""

    MAX_KEYS = 100_000  # beyond this, full (idle) buckets are forgotten

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time):
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._clock, self._wall = clock, wall
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def hit(self, key: str) -> Verdict:
        if not self.enabled:
            return Verdict(True, 0, 0, 0, 0)
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - at) * self._rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > self.MAX_KEYS:
                self._forget_idle(now)
        missing = self.per_minute - tokens
        reset = int(self._wall() + math.ceil(missing / self._rate))
        retry_after = 0 if allowed else max(1, math.ceil((1.0 - tokens) / self._rate))
        return Verdict(allowed, self.per_minute, int(tokens), retry_after, reset)

    def _forget_idle(self, now: float) -> None:
        full_after = self.per_minute / self._rate
        for key in [k for k, (_, at) in self._buckets.items() if now - at >= full_after]:
            del self._buckets[key]
