"""Leases: one holder at a time among a service's replicas, for a job or the relay's sweep.

A lease is one document in the service's own `leases` collection:
`{_id: name, holder, token, expires_ms}`. Each rule is ONE conditional update:

- acquire: only if the lease is free (released: `expires_ms` 0) or expired; the new holder
  gets `token + 1` (a missing lease is created with token 1). Two acquirers racing match
  the same expired document, but MongoDB applies one update at a time and re-checks the
  filter, so the second finds it taken and its upsert collides on `_id`: exactly one wins.
- renew: only if the holder and the token are still mine.
- release: only if the holder and the token are still mine; the lease becomes free.

The token grows with every new holder, so work stamped with it (a fencing token) can be
told from a stale holder's. Time is each process's clock in epoch milliseconds (the
portable subset has no server-side clock in updates): replicas' clocks must agree within
`margin` (NTP does far better). A holder counts itself the holder only until its last
successful renewal started plus TTL minus that margin, so it stops before anyone else may
take over; it renews every TTL/3, so a dead holder is replaced within about TTL + TTL/3.
"""
from __future__ import annotations

import asyncio
import contextvars
import os
import socket
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from siyu_kit import logging as slog
from siyu_kit.config import env_seconds
from siyu_kit.ids import new_id

log = slog.get("siyu.lease")

COLLECTION = "leases"
DEFAULT_TTL_S = 10.0


def ttl_s() -> float:
    return env_seconds("LEASE_TTL_S", DEFAULT_TTL_S)


def new_holder(service: str) -> str:
    """A holder id unique to this process's life: a restarted process is a new holder."""
    return f"{service}@{socket.gethostname()}:{os.getpid()}:{new_id('h')}"


def now_ms() -> int:
    return int(time.time() * 1000)


class LeaseStore(Protocol):
    """The three conditional writes. Blocking (pymongo); callers go through run_sync."""

    def acquire(self, name: str, holder: str, now_ms: int, ttl_ms: int) -> int | None:
        """The new fencing token, or None when someone else holds the lease."""

    def renew(self, name: str, holder: str, token: int, now_ms: int, ttl_ms: int) -> bool:
        """False when the lease is no longer this holder's with this token."""

    def release(self, name: str, holder: str, token: int) -> bool:
        ...


class MongoLeases:
    def __init__(self, collection: Collection):
        self.collection = collection

    def acquire(self, name: str, holder: str, now_ms: int, ttl_ms: int) -> int | None:
        try:
            doc = self.collection.find_one_and_update(
                {"_id": name, "expires_ms": {"$lte": now_ms}},
                {"$set": {"holder": holder, "expires_ms": now_ms + ttl_ms, "acquired_ms": now_ms},
                 "$inc": {"token": 1}},
                projection={"token": 1}, upsert=True, return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:
            return None  # held by someone else: the upsert collided with the existing lease
        return int(doc["token"]) if doc else None

    def renew(self, name: str, holder: str, token: int, now_ms: int, ttl_ms: int) -> bool:
        return self.collection.update_one({"_id": name, "holder": holder, "token": token},
                                          {"$set": {"expires_ms": now_ms + ttl_ms}}).matched_count == 1

    def release(self, name: str, holder: str, token: int) -> bool:
        return self.collection.update_one({"_id": name, "holder": holder, "token": token},
                                          {"$set": {"expires_ms": 0}}).matched_count == 1


@dataclass(frozen=True)
class Held:
    """What a job run sees of its lease: the fencing token, and whether it is still held
    (a long run checks between steps and stops when it is not)."""
    name: str
    token: int
    still_held: Callable[[], bool]


_current: contextvars.ContextVar[Held | None] = contextvars.ContextVar("siyu_lease", default=None)


def current() -> Held | None:
    """The lease the running job holds (None outside a leased job)."""
    return _current.get()


def fencing_token() -> int | None:
    held = _current.get()
    return held.token if held else None


class Lease:
    """One process's view of one lease. `step()` acquires or renews as due and says whether
    this process holds the lease now; `held()` answers without a database call."""

    def __init__(self, store: LeaseStore, name: str, holder: str, ttl: float | None = None,
                 clock: Callable[[], int] = now_ms, monotonic: Callable[[], float] = time.monotonic,
                 run: Callable | None = None):
        self.store = store
        self.name = name
        self.holder = holder
        self.ttl = ttl if ttl is not None else ttl_s()
        self.margin = self.ttl / 5  # clock skew between replicas this lease tolerates
        self.clock = clock
        self.monotonic = monotonic
        self.token: int | None = None
        self._valid_until = 0.0
        self._next_renew = 0.0
        self._run = run or _run_sync

    @property
    def ttl_ms(self) -> int:
        return int(self.ttl * 1000)

    @property
    def retry_s(self) -> float:
        """How often a holder renews and a waiting replica tries to acquire."""
        return self.ttl / 3

    def held(self) -> bool:
        return self.token is not None and self.monotonic() < self._valid_until

    def as_held(self) -> Held:
        assert self.token is not None
        return Held(self.name, self.token, self.held)

    async def step(self) -> bool:
        started = self.monotonic()
        try:
            if self.token is not None:
                if self.held() and started < self._next_renew:
                    return True
                # Also after a lapse (a stalled loop, the database away): while the token
                # is still mine nobody else has held the lease, so renewing is safe.
                if await self._run(self.store.renew, self.name, self.holder, self.token, self.clock(), self.ttl_ms):
                    self._granted(started)
                    return True
                log.warning("lease.lost", lease=self.name, token=self.token)
                self.token = None
            token = await self._run(self.store.acquire, self.name, self.holder, self.clock(), self.ttl_ms)
            if token is not None:
                self.token = token
                self._granted(started)
                log.info("lease.acquired", lease=self.name, token=token)
        except Exception as error:  # noqa: BLE001 - the database away: keep what is still valid
            log.warning("lease.step_failed", lease=self.name, error=repr(error))
        return self.held()

    def _granted(self, started: float) -> None:
        # Counted from before the write was sent: the stored expiry is later than that.
        self._valid_until = started + self.ttl - self.margin
        self._next_renew = started + self.retry_s

    async def release(self) -> None:
        token, self.token = self.token, None
        if token is None:
            return
        try:
            await self._run(self.store.release, self.name, self.holder, token)
            log.info("lease.released", lease=self.name, token=token)
        except Exception as error:  # noqa: BLE001 - it expires by itself
            log.warning("lease.release_failed", lease=self.name, error=repr(error))


async def _run_sync(fn, *args):
    from siyu_kit.db import run_sync
    return await run_sync(fn, *args)


def mongo_store() -> MongoLeases:
    from siyu_kit.db import database
    return MongoLeases(database()[COLLECTION])


async def hold_while(lease: Lease, on_change: Callable[[bool], None] | None = None) -> None:
    """Keeps stepping the lease (renewing or trying to acquire) until cancelled, then
    releases it so another replica takes over at once."""
    was = False
    try:
        while True:
            now = await lease.step()
            if now != was and on_change is not None:
                on_change(now)
            was = now
            await asyncio.sleep(lease.retry_s if not now else max(0.05, lease._next_renew - lease.monotonic()))
    finally:
        if on_change is not None and was:
            on_change(False)
        await asyncio.shield(lease.release())


def enter(held: Held) -> contextvars.Token:
    return _current.set(held)


def leave(mark: contextvars.Token) -> None:
    _current.reset(mark)
