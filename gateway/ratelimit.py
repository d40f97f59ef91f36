"""In-memory token buckets: per channel API key and per member, burst twice the rate.

One gateway process keeps its own buckets; with N replicas the effective limit is N times
the setting, which is what the settings are sized for.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`take(key)` → 0 when allowed, else seconds until a token is back (for Retry-After)."""

    MAX_BUCKETS = 100_000

    def __init__(self, rate_per_s: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.rate = float(rate_per_s)
        self.burst = float(burst if burst is not None else 2 * rate_per_s)
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str) -> float:
        if not self.enabled:
            return 0.0
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.MAX_BUCKETS:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        """Buckets that have refilled carry no state worth keeping."""
        refill_s = self.burst / self.rate
        for key in [k for k, b in self._buckets.items() if now - b.updated >= refill_s]:
            del self._buckets[key]


def retry_after_header(wait_s: float) -> str:
    return str(max(1, math.ceil(wait_s)))
