"""Values a process keeps in memory for the checkout's hot path, dropped when an event
says they changed.

Every replica must hear the event, so each process listens on plain NATS (a core
subscription to the stream's subjects), not through a durable consumer, whose messages go
to one replica only. Events published while a process was cut off from NATS never reach
it, so every cache of the process is emptied when its connection comes back; the
time-to-live bounds what a missed event can leave behind meanwhile (and before a process
listens). A cache without an event that concerns it relies on the time-to-live alone, and
the process that makes the change drops its own entry at once.
"""
from __future__ import annotations

import time
import weakref
from collections import OrderedDict
from typing import Awaitable, Callable, Generic, Hashable, TypeVar

from google.protobuf.message import DecodeError
from siyu.common.v1 import common_pb2

from siyu_kit import logging as slog
from siyu_kit.events.outbox import decode

log = slog.get("siyu.invalidation")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Listener = Callable[[common_pb2.EventEnvelope], None]

MAX_ENTRIES = 10_000
# Every cache of this process, emptied together when NATS comes back (forget_all).
_caches: weakref.WeakSet = weakref.WeakSet()


class TtlCache(Generic[K, V]):
    """At most `max_entries` values, each kept `ttl_s` seconds; the oldest go first."""

    def __init__(self, ttl_s: float, max_entries: int = MAX_ENTRIES, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        # Counts drops, so a load that overlapped one does not keep what it read.
        self._epoch = 0
        _caches.add(self)

    def get(self, key: K) -> V | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        if hit[0] <= self._clock():
            self._entries.pop(key, None)
            return None
        return hit[1]

    def put(self, key: K, value: V) -> None:
        self._entries.pop(key, None)
        self._entries[key] = (self._clock() + self.ttl_s, value)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def drop(self, key: K) -> None:
        self._entries.pop(key, None)
        self._epoch += 1

    def clear(self) -> None:
        self._entries.clear()
        self._epoch += 1

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The kept value, or `load()`'s, kept from now on. A drop that comes while the
        load is under way wins: the loaded value is returned but not kept (it may have been
        read before the change the drop announces)."""
        hit = self.get(key)
        if hit is not None:
            return hit
        epoch = self._epoch
        value = await load()
        if self._epoch == epoch:
            self.put(key, value)
        return value


def forget_all() -> None:
    """Empties every cache of this process (its events may have been missed)."""
    for cache in list(_caches):
        cache.clear()


async def on_reconnected() -> None:
    """NATS's reconnected callback: what was published while away was not heard here."""
    forget_all()
    log.info("invalidation.caches_emptied_after_reconnect")


# (subject, listener): what this process listens to once it is connected to NATS.
_listeners: list[tuple[str, Listener]] = []


def on_events(subject: str, listener: Listener) -> None:
    """Call `listener` with the envelope of every event published on `subject` (a NATS
    subject, wildcards allowed), in every process that registered it."""
    _listeners.append((subject, listener))


async def listen(nc) -> None:
    """Subscribes the registered listeners on `nc` (the service does this at start)."""
    for subject, listener in _listeners:
        await nc.subscribe(subject, cb=_callback(listener))


def _callback(listener: Listener):
    async def receive(msg) -> None:
        try:
            listener(decode(msg.data))
        except (DecodeError, ValueError, KeyError):
            log.warning("invalidation.unreadable", subject=msg.subject)
    return receive
