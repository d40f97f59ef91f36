"""In-memory token buckets: per channel API key and per member, burst twice the rate.

One gateway process keeps its own buckets; the worker processes of one gateway
(SIYU_GATEWAY_WORKERS) share theirs (`SharedRateLimiter`). With N replicas (pods) the
effective limit is N times the setting, which is what the settings are sized for.
"""
from __future__ import annotations

import fcntl
import hashlib
import math
import mmap
import os
import struct
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


# ---- buckets shared by the gateway's worker processes (SIYU_GATEWAY_WORKERS) ----------
# Every worker maps the same table (a file in shared memory) and changes a bucket under an
# exclusive lock on it, so a member's rate holds across workers exactly as in one process,
# however the connections are spread. The monotonic clock is the machine's, the same in
# every worker.
SHARED_STATE_ENV = "SIYU_GATEWAY_SHARED_LIMITS"
_SLOT = struct.Struct("<Qdd")  # key hash (0: empty), tokens, updated
SHARED_SLOTS = 1 << 16
# Slots looked at for a key; beyond them the least recently used bucket is taken over.
PROBES = 16


def _key_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") or 1


class SharedRateLimiter(RateLimiter):
    """The same buckets as `RateLimiter`, in a table every worker process maps."""

    def __init__(self, rate_per_s: float, path: str, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic, slots: int = SHARED_SLOTS):
        super().__init__(rate_per_s, burst, clock)
        self.slots = slots
        size = slots * _SLOT.size
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            if os.fstat(self._fd).st_size < size:
                os.ftruncate(self._fd, size)  # new bytes are zero: every slot empty
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._map = mmap.mmap(self._fd, size)

    def take(self, key: str) -> float:
        if not self.enabled:
            return 0.0
        wanted = _key_hash(key)
        refill_s = self.burst / self.rate
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            now = self.clock()
            slot, tokens, updated, free, oldest = -1, 0.0, 0.0, -1, -1
            oldest_at = math.inf
            for n in range(PROBES):
                i = (wanted + n) % self.slots
                found, t, u = _SLOT.unpack_from(self._map, i * _SLOT.size)
                if found == wanted:
                    slot, tokens, updated = i, t, u
                    break
                if free < 0 and (found == 0 or now - u >= refill_s):
                    free = i  # empty, or a bucket that has refilled: it holds nothing worth keeping
                if u < oldest_at:
                    oldest, oldest_at = i, u
            if slot < 0:
                slot, tokens = (free if free >= 0 else oldest), self.burst
            else:
                tokens = min(self.burst, tokens + (now - updated) * self.rate)
            wait = 0.0
            if tokens >= 1:
                tokens -= 1
            else:
                wait = (1 - tokens) / self.rate
            _SLOT.pack_into(self._map, slot * _SLOT.size, wanted, tokens, now)
            return wait
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


def limiter(rate_per_s: float, name: str) -> RateLimiter:
    """The gateway's limiter called `name`: in a table shared with the other worker
    processes when there are several, else this process's own."""
    shared_dir = os.environ.get(SHARED_STATE_ENV, "")
    if not shared_dir:
        return RateLimiter(rate_per_s)
    return SharedRateLimiter(rate_per_s, os.path.join(shared_dir, f"ratelimit-{name}"))
