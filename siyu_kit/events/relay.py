"""The outbox relay: publishes every committed event, exactly as written, at least once.

Of a service's replicas, the one that committed a document's events publishes them at
once (`kick(collection, document id)` from the commit) and clears them; the sweep for
documents left pending (a replica died between its commit and its publish, or a write
that did not name its document) runs only in the replica holding the sweep's lease and
only takes documents pending for longer than `grace_s`, so replicas do not publish each
other's fresh events. Each document stands alone: a publish that fails keeps that
document's events for a later pass and holds back no other document.

JetStream drops a re-publish of the same `Nats-Msg-Id` inside its duplicate window, and
consumers are idempotent by event id, so a relay that dies after publishing and before
clearing the outbox, or two replicas that touch one document at once, cause no double effect.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Sequence

from nats.js import JetStreamContext
from pymongo import UpdateOne
from pymongo.collection import Collection

from siyu_kit import logging as slog
from siyu_kit.db import run_sync
from siyu_kit.events.outbox import OUTBOX, PENDING, SEQ, SINCE
from siyu_kit.lease import Lease
from siyu_kit.metrics import (EVENTS_DUPLICATE, EVENTS_PUBLISHED, EVENTS_PUBLISHED_BY_SUBJECT, LEASES_HELD,
                              OUTBOX_BACKLOG)

log = slog.get("siyu.relay")
BATCH = 100
# Documents pending for less than this belong to the replica that wrote them.
SWEEP_GRACE_S = 2.0
_FIELDS = {OUTBOX: 1, SEQ: 1}
_PARTIAL = "_partial"  # in memory only: the document holds events this pass leaves alone


class OutboxRelay:
    def __init__(self, service: str, js: JetStreamContext, collections: list[Collection],
                 interval_s: float = 0.5, sweep_lease: Lease | None = None, grace_s: float = SWEEP_GRACE_S):
        self.service = service
        self.js = js
        self.collections = collections
        self.interval_s = interval_s
        self.sweep_lease = sweep_lease
        self.grace_s = grace_s
        self._kicked = asyncio.Event()
        # collection name → (collection, document id → the events to publish, None: all)
        self._due: dict[str, tuple[Collection, dict[Any, set[str] | None]]] = {}
        self._sweep_now = False
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def kick(self, collection: Collection | None = None, doc_id: Any = None,
             event_ids: Sequence[str] | None = None) -> None:
        """These events were just committed in this document: publish them now (no ids:
        all it holds). Without a document, look through every collection now. Safe from
        any thread (a repository writes from the database thread pool)."""
        loop = self._loop
        if loop is None:
            return  # not running yet: the sweep finds the events
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        ids = None if event_ids is None else set(event_ids)
        if running is loop:
            self._note(collection, doc_id, ids)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._note, collection, doc_id, ids)

    def _note(self, collection: Collection | None, doc_id: Any, event_ids: set[str] | None) -> None:
        if collection is None or doc_id is None:
            self._sweep_now = True
        else:
            docs = self._due.setdefault(collection.name, (collection, {}))[1]
            noted = docs.get(doc_id, set())
            docs[doc_id] = None if noted is None or event_ids is None else noted | event_ids
        self._kicked.set()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        lease = self.sweep_lease
        held = LEASES_HELD.labels(self.service, lease.name) if lease else None
        next_sweep = 0.0
        try:
            while not self._stopping:
                published = 0
                try:
                    published += await self.publish_due()
                    if lease is not None:
                        holding = await lease.step()
                        held.set(1 if holding else 0)
                    else:
                        holding = True
                    if self._sweep_now or (holding and time.monotonic() >= next_sweep):
                        grace = 0.0 if self._sweep_now else self.grace_s
                        self._sweep_now = False
                        next_sweep = time.monotonic() + self.interval_s
                        published += await self.pass_once(grace)
                except Exception:  # noqa: BLE001 - keep relaying; the outbox keeps the events
                    log.exception("relay.pass_failed")
                if published or self._due:
                    continue
                self._kicked.clear()
                try:
                    await asyncio.wait_for(self._kicked.wait(), timeout=self.interval_s)
                except asyncio.TimeoutError:
                    pass
        finally:
            if lease is not None:
                held.set(0)
                await asyncio.shield(lease.release())

    def stop(self) -> None:
        self._stopping = True
        self._kicked.set()

    async def publish_due(self) -> int:
        """Publishes the documents whose commits kicked this relay."""
        due, self._due = self._due, {}
        published = 0
        for collection, wanted in due.values():
            ids = list(wanted)
            for start in range(0, len(ids), BATCH):
                chunk = ids[start:start + BATCH]
                docs = await run_sync(lambda c=collection, i=chunk: list(
                    c.find({"_id": {"$in": i}, PENDING: 1}, _FIELDS)))
                docs = [d for d in (_only(doc, wanted[doc["_id"]]) for doc in docs) if d[OUTBOX]]
                if docs:
                    published += await self._publish_batch(collection, docs)
        return published

    async def pass_once(self, grace_s: float = 0.0) -> int:
        """The sweep: documents (of every collection) pending for `grace_s` or longer (with
        no grace, everything pending now, also what was written this very millisecond)."""
        published = 0
        backlog = 0
        cutoff = int(time.time() * 1000 - grace_s * 1000)
        for collection in self.collections:
            docs = await run_sync(_left_pending, collection, cutoff)
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
            ack = await self.js.publish(event["subject"], bytes(event["data"]),
                                        headers={"Nats-Msg-Id": event_id})
            EVENTS_PUBLISHED_BY_SUBJECT.labels(self.service, _family(event["subject"])).inc()
            if getattr(ack, "duplicate", False):
                EVENTS_DUPLICATE.labels(self.service).inc()
        EVENTS_PUBLISHED.labels(self.service).inc(len(events))


def _only(doc: dict, event_ids: set[str] | None) -> dict:
    """The document as far as this replica publishes it: the events it committed (those
    still there). When others' events are there too, their writer publishes them, and
    clears the pending mark (or the sweep does)."""
    events = doc.get(OUTBOX) or {}
    if event_ids is None:
        return doc
    mine = {eid: e for eid, e in events.items() if eid in event_ids}
    return {**doc, OUTBOX: mine, _PARTIAL: len(mine) < len(events)}


def _family(subject: str) -> str:
    """A live room's subject names its session: count the rooms as one family."""
    return "siyu.live.room" if subject.startswith("siyu.live.room.") else subject


def _left_pending(collection: Collection, cutoff_ms: int) -> list[dict]:
    """Pending documents whose last events were written at or before `cutoff_ms`, and
    pending documents written before the outbox kept that time."""
    docs = list(collection.find({PENDING: 1, SINCE: {"$lte": cutoff_ms}}, _FIELDS).limit(BATCH))
    if len(docs) < BATCH:
        docs += list(collection.find({PENDING: 1, SINCE: {"$exists": False}}, _FIELDS).limit(BATCH - len(docs)))
    return docs


def _clear(collection: Collection, docs: list[dict]) -> None:
    ops = []
    for doc in docs:
        events = doc.get(OUTBOX) or {}
        if events:
            ops.append(UpdateOne({"_id": doc["_id"]}, {"$unset": {f"{OUTBOX}.{eid}": "" for eid in events}}))
        if doc.get(_PARTIAL):
            continue  # others' events are still there
        # Only if no write added events meanwhile; otherwise the next pass sends them.
        ops.append(UpdateOne({"_id": doc["_id"], SEQ: doc.get(SEQ, 0)}, {"$set": {PENDING: 0}}))
    collection.bulk_write(ops, ordered=True)
