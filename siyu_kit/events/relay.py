"""The outbox relay: publishes every committed event, exactly as written, at least once.

JetStream drops a re-publish of the same `Nats-Msg-Id` inside its duplicate window, and
consumers are idempotent by event id, so a relay that dies after publishing and before
clearing the outbox causes no double effect.
"""
from __future__ import annotations

import asyncio

from nats.js import JetStreamContext
from pymongo import UpdateOne
from pymongo.collection import Collection

from siyu_kit import logging as slog
from siyu_kit.db import run_sync
from siyu_kit.events.outbox import OUTBOX, PENDING, SEQ
from siyu_kit.metrics import EVENTS_PUBLISHED, OUTBOX_BACKLOG

log = slog.get("siyu.relay")
BATCH = 100


class OutboxRelay:
    def __init__(self, service: str, js: JetStreamContext, collections: list[Collection],
                 interval_s: float = 0.5):
        self.service = service
        self.js = js
        self.collections = collections
        self.interval_s = interval_s
        self._kicked = asyncio.Event()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def kick(self) -> None:
        """Wake the relay now: events were just committed. Safe from any thread (a
        repository writes from the database thread pool)."""
        loop = self._loop
        if loop is None:
            return  # not running yet: its first pass finds the events
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._kicked.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._kicked.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                published = await self.pass_once()
            except Exception:  # noqa: BLE001 - keep relaying; the outbox keeps the events
                log.exception("relay.pass_failed")
                published = 0
            if published:
                continue
            self._kicked.clear()
            try:
                await asyncio.wait_for(self._kicked.wait(), timeout=self.interval_s)
            except asyncio.TimeoutError:
                pass

    def stop(self) -> None:
        self._stopping = True
        self._kicked.set()

    async def pass_once(self) -> int:
        published = 0
        backlog = 0
        for collection in self.collections:
            docs = await run_sync(lambda c=collection: list(
                c.find({PENDING: 1}, {OUTBOX: 1, SEQ: 1}).limit(BATCH)))
            backlog += len(docs)
            if docs:
                published += await self._publish_batch(collection, docs)
        OUTBOX_BACKLOG.labels(self.service).set(backlog)
        return published

    async def _publish_batch(self, collection: Collection, docs: list[dict]) -> int:
        """Publishes the documents' events concurrently (in order within each document),
        then clears the outboxes that went out in one round trip. A document whose publish
        failed keeps its events for the next pass; the others are not held back by it."""
        results = await asyncio.gather(*(self._publish_events(doc) for doc in docs), return_exceptions=True)
        sent = [doc for doc, outcome in zip(docs, results) if not isinstance(outcome, BaseException)]
        failures = [outcome for outcome in results if isinstance(outcome, BaseException)]
        if failures:
            log.warning("relay.publish_failed", documents=len(failures), error=repr(failures[0]))
        if sent:
            await run_sync(_clear, collection, sent)
        return sum(len(doc.get(OUTBOX) or {}) for doc in sent)

    async def _publish_events(self, doc: dict) -> None:
        events = doc.get(OUTBOX) or {}
        # ULIDs sort by time: publish in the order the events were made.
        for event_id in sorted(events):
            event = events[event_id]
            await self.js.publish(event["subject"], bytes(event["data"]),
                                  headers={"Nats-Msg-Id": event_id})
        EVENTS_PUBLISHED.labels(self.service).inc(len(events))


def _clear(collection: Collection, docs: list[dict]) -> None:
    ops = []
    for doc in docs:
        events = doc.get(OUTBOX) or {}
        if events:
            ops.append(UpdateOne({"_id": doc["_id"]}, {"$unset": {f"{OUTBOX}.{eid}": "" for eid in events}}))
        # Only if no write added events meanwhile; otherwise the next pass sends them.
        ops.append(UpdateOne({"_id": doc["_id"], SEQ: doc.get(SEQ, 0)}, {"$set": {PENDING: 0}}))
    collection.bulk_write(ops, ordered=True)
