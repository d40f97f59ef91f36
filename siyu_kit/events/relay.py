"""The outbox relay: publishes every committed event, exactly as written, at least once.

JetStream drops a re-publish of the same `Nats-Msg-Id` inside its duplicate window, and
consumers are idempotent by event id, so a relay that dies after publishing and before
clearing the outbox causes no double effect.
"""
from __future__ import annotations

import asyncio

from nats.js import JetStreamContext
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

    def kick(self) -> None:
        """Wake the relay now: a use case just committed events."""
        self._kicked.set()

    async def run(self) -> None:
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
            for doc in docs:
                published += await self._publish_doc(collection, doc)
        OUTBOX_BACKLOG.labels(self.service).set(backlog)
        return published

    async def _publish_doc(self, collection: Collection, doc: dict) -> int:
        events = doc.get(OUTBOX) or {}
        # ULIDs sort by time: publish in the order the events were made.
        for event_id in sorted(events):
            event = events[event_id]
            await self.js.publish(event["subject"], bytes(event["data"]),
                                  headers={"Nats-Msg-Id": event_id})
        EVENTS_PUBLISHED.labels(self.service).inc(len(events))

        def clear() -> None:
            if events:
                collection.update_one({"_id": doc["_id"]},
                                      {"$unset": {f"{OUTBOX}.{eid}": "" for eid in events}})
            # Only if no write added events meanwhile; otherwise the next pass sends them.
            collection.update_one({"_id": doc["_id"], SEQ: doc.get(SEQ, 0)}, {"$set": {PENDING: 0}})

        await run_sync(clear)
        return len(events)
