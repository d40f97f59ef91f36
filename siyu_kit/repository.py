"""The two writes every aggregate repository makes: insert a new aggregate with its
events, and save a change as one conditional update on the version that was read, with
the change's events in the same document's outbox. Both wake the relay when they stored
events. Blocking (pymongo): adapters call them through siyu_kit.db.run_sync."""
from __future__ import annotations

from typing import Any, Sequence

from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from siyu_kit.aggregate import StaleVersion
from siyu_kit.events.outbox import Event, add_to_update, committed, for_insert


def insert_new(collection: Collection, doc: dict, events: Sequence[Event] = ()) -> bool:
    """False when a unique index (an idempotency key, a natural key) already holds one."""
    try:
        collection.insert_one({**doc, **for_insert(*events)})
    except DuplicateKeyError:
        return False
    if events:
        committed(collection, doc.get("_id"), [e.event_id for e in events])
    return True


def save_change(collection: Collection, query: dict[str, Any], update: dict[str, Any],
                events: Sequence[Event] = (), *, version: int | None = None) -> None:
    """One conditional update: `query` (which must name the merchant) plus `version` when
    given, the version bumped, the events added to the outbox. Raises StaleVersion when
    no document matched: another writer came first, or the guard no longer holds."""
    if version is not None:
        query = {**query, "version": version}
        update = {**update, "$inc": {**update.get("$inc", {}), "version": 1}}
    if collection.update_one(query, add_to_update(update, *events)).modified_count != 1:
        raise StaleVersion(f"{collection.name} {query.get('_id', '')} changed since it was read")
    if events:
        committed(collection, query.get("_id"), [e.event_id for e in events])
