"""The points account and its ledger over MongoDB.

An account (`points_accounts`, one per member) holds the counters, the lots, the frozen
lots per order, the holds per order, the causes it has applied (`done`), the ledger
entries it still owes (`pending`) and an outbox. A movement is one `update_one` whose
filter carries every guard the movement needs and whose update carries the counters,
the lots, the cause marker, the owed entry and the events; then the entry is inserted
(unique per cause: a second insert is a duplicate) and the debt cleared. `repair` stores
what a crash left owing. Every shape is in tests/conformance/test_points_shapes.py.
"""
from __future__ import annotations

from datetime import datetime, timezone

from pymongo import DESCENDING, ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from siyu_kit.db import run_sync
from siyu_kit.events.outbox import Event, add_to_update, committed, for_insert
from siyu_kit.protos import epoch_ms

from services.member.adapters import messages
from services.member.adapters.documents import PointsAccountDoc, PointsEntryDoc
from services.member.adapters.repositories import PointsLedger, sync_growth
from services.member.domain.points import PointsEarned, PointsEntry, PointsMoved
from services.member.domain.points_account import EARN, REVERSE, Cause, FrozenLot, Hold, Movement, PointsBook, lot_key

LEASE_MS = 30_000
REPAIR_AFTER_MS = 30_000


def account_id(merchant_id: str, member_id: str) -> str:
    """An account's id: the merchant's and the member's, so no merchant's call can ever
    reach (or collide with) another merchant's account."""
    return f"{merchant_id}:{member_id}"


def _accounts() -> Collection:
    return PointsAccountDoc._get_collection()


def _ledger() -> Collection:
    return PointsEntryDoc._get_collection()


def outbox_collections() -> list[Collection]:
    return [_accounts()]


# ---- documents ⇄ domain -----------------------------------------------------------------

def _ms_time(ms) -> datetime | None:
    return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc) if ms else None


def entry_doc(merchant_id: str, entry: PointsEntry) -> dict:
    return {"_id": entry.id, "merchant_id": merchant_id, "member_id": entry.member_id, "source": entry.source,
            "source_id": entry.source_id, "kind": entry.kind, "points": entry.points, "growth": entry.growth,
            "frozen": int(entry.frozen), "frozen_until": entry.frozen_until, "created_at": entry.created_at,
            "available": entry.available, "frozen_delta": entry.frozen_delta, "held": entry.held,
            "owed": entry.owed, "gross": entry.gross, "returned": entry.returned,
            "refunded": entry.refunded, "order_id": entry.order_id, "reason": entry.reason,
            "actor_id": entry.actor_id}


def _owed_doc(doc: dict) -> dict:
    """The entry as the account keeps it until it is stored: times as epoch ms (a datetime
    inside a `$set` comes back as a string)."""
    return {**{k: v for k, v in doc.items() if k not in ("frozen_until", "created_at")},
            "frozen_until_ms": epoch_ms(doc["frozen_until"]) if doc.get("frozen_until") else 0,
            "created_ms": epoch_ms(doc["created_at"])}


def _from_owed(doc: dict) -> dict:
    out = {k: v for k, v in doc.items() if k not in ("frozen_until_ms", "created_ms")}
    return {**out, "frozen_until": _ms_time(doc.get("frozen_until_ms")), "created_at": _ms_time(doc.get("created_ms"))}


def entry_of(doc: dict) -> PointsEntry:
    return PointsEntry(
        id=doc["_id"], source=doc["source"], source_id=doc["source_id"], points=int(doc["points"]),
        growth=int(doc.get("growth") or 0), frozen=bool(doc.get("frozen")), frozen_until=doc.get("frozen_until"),
        created_at=doc.get("created_at"), kind=doc.get("kind") or "", member_id=doc.get("member_id") or "",
        available=int(doc.get("available") or 0), frozen_delta=int(doc.get("frozen_delta") or 0),
        held=int(doc.get("held") or 0), owed=int(doc.get("owed") or 0), gross=int(doc.get("gross") or 0),
        returned=int(doc.get("returned") or 0), refunded=int(doc.get("refunded") or 0),
        order_id=doc.get("order_id") or "", reason=doc.get("reason") or "", actor_id=doc.get("actor_id") or "")


def _book(doc: dict) -> PointsBook:
    return PointsBook(
        merchant_id=doc["merchant_id"], member_id=doc.get("member_id") or doc["_id"], balance=int(doc.get("balance") or 0),
        available=int(doc.get("available") or 0), frozen=int(doc.get("frozen") or 0),
        held=int(doc.get("held") or 0), owed=int(doc.get("owed") or 0),
        lots={k: int(v) for k, v in (doc.get("lots") or {}).items()},
        frozen_lots={o: FrozenLot(int(v["points"]), v["key"], int(v.get("unfreeze_ms") or 0))
                     for o, v in (doc.get("frozen_lots") or {}).items()},
        holds={o: Hold(int(v["points"]), {k: int(n) for k, n in (v.get("takes") or {}).items()})
               for o, v in (doc.get("holds") or {}).items()},
        done=set(doc.get("done") or {}))


def _opened(merchant_id: str, member_id: str, legacy: list[dict], time_zone: str, expiry_years: int) -> dict:
    """A new account, carrying what the ledger holds from before accounts: each order's
    earning (frozen, or in the lot of the year it was earned) and its cause as applied.
    Read as a PointsBook; stored (by `_opened_from_book`) with the first movement."""
    book = PointsBook(merchant_id, member_id)
    for doc in legacy:
        entry = entry_of(doc)
        book.done.add(Cause(entry.source, entry.source_id, EARN).key)
        key = lot_key(entry.created_at.replace(tzinfo=entry.created_at.tzinfo or timezone.utc)
                      if entry.created_at else datetime.now(timezone.utc), time_zone, expiry_years)
        book.balance += entry.points
        if entry.frozen and entry.source == "ORDER" and entry.points > 0:
            book.frozen += entry.points
            book.frozen_lots[entry.source_id] = FrozenLot(entry.points, key)
        else:
            book.available += entry.points
            book.lots[key] = book.lots.get(key, 0) + entry.points
    return {"_id": account_id(merchant_id, member_id), "member_id": member_id, "merchant_id": merchant_id,
            "balance": book.balance, "available": book.available,
            "frozen": book.frozen, "held": 0, "owed": 0, "lots": book.lots,
            "frozen_lots": {o: {"points": lot.points, "key": lot.key, "unfreeze_ms": 0}
                            for o, lot in book.frozen_lots.items()},
            "holds": {}, "done": {k: 0 for k in book.done}}


def _movement(merchant_id: str, m: Movement, owed: dict, events: list[Event], now_ms: int) -> tuple[dict, dict]:
    """The one conditional update a movement is."""
    ck = m.cause.key
    query: dict = {"_id": account_id(merchant_id, m.member_id), "merchant_id": merchant_id,
                   f"done.{ck}": {"$exists": False}}
    for cause in m.not_after:
        query[f"done.{cause.key}"] = {"$exists": False}
    inc: dict = {}
    for name, delta in (("balance", m.points), ("available", m.available), ("frozen", m.frozen),
                        ("held", m.held), ("owed", m.owed)):
        if delta:
            inc[name] = delta
            if delta < 0:
                query[name] = {"$gte": -delta}
    for key, delta in m.lots.items():
        inc[f"lots.{key}"] = delta
        if delta < 0:
            query[f"lots.{key}"] = {"$gte": -delta}
    sets: dict = {f"done.{ck}": now_ms, f"pending.{ck}": owed, "updated_ms": now_ms}
    unsets: dict = {}
    for order_id, lot in m.set_frozen.items():
        query[f"frozen_lots.{order_id}"] = {"$exists": False}
        sets[f"frozen_lots.{order_id}"] = {"points": lot.points, "key": lot.key, "unfreeze_ms": lot.unfreeze_ms}
    for order_id, points in m.drop_frozen.items():
        query[f"frozen_lots.{order_id}.points"] = points
        unsets[f"frozen_lots.{order_id}"] = ""
    for order_id, points in m.take_frozen.items():
        query[f"frozen_lots.{order_id}.points"] = {"$gte": points}
        inc[f"frozen_lots.{order_id}.points"] = -points
    for order_id, hold in m.set_hold.items():
        query[f"holds.{order_id}"] = {"$exists": False}
        sets[f"holds.{order_id}"] = {"points": hold.points, "takes": dict(hold.takes)}
    for order_id, points in m.drop_hold.items():
        query[f"holds.{order_id}.points"] = points
        unsets[f"holds.{order_id}"] = ""
    inc["pending_count"] = 1
    update: dict = {"$inc": inc, "$set": sets}
    if unsets:
        update["$unset"] = unsets
    if m.due_ms:
        update["$min"] = {"due_ms": m.due_ms}
    return query, add_to_update(update, *events)


def _events(merchant_id: str, m: Movement, entry: PointsEntry, channel: str) -> list[Event]:
    if m.cause.kind == EARN:
        return [messages.earned_event(merchant_id, PointsEarned(member_id=m.member_id, entry=entry, channel=channel))]
    return [messages.moved_event(merchant_id, PointsMoved(member_id=m.member_id, entry=entry, channel=channel))]


def _open(doc: dict) -> None:
    try:
        _accounts().insert_one(doc)
    except DuplicateKeyError:
        pass  # opened meanwhile: the guards of each movement decide


def _store_owed(merchant_id: str, member_id: str, ck: str, doc: dict) -> bool:
    """Insert the entry (once: a second insert is a duplicate) and clear the debt."""
    try:
        _ledger().insert_one(doc)
        fresh = True
    except DuplicateKeyError:
        fresh = False
    owed = f"pending.{ck}"
    _accounts().update_one({"_id": account_id(merchant_id, member_id), "merchant_id": merchant_id,
                            owed: {"$exists": True}},
                           {"$unset": {owed: ""}, "$inc": {"pending_count": -1}})
    return fresh


def move(merchant_id: str, m: Movement, entry: PointsEntry, channel: str, opened: dict | None) -> bool:
    """Applies the movement; False when a guard did not hold (nothing written)."""
    if opened is not None:
        _open(opened)
    doc = entry_doc(merchant_id, entry)
    now_ms = epoch_ms(entry.created_at)
    query, update = _movement(merchant_id, m, _owed_doc(doc), _events(merchant_id, m, entry, channel), now_ms)
    if _accounts().update_one(query, update).modified_count != 1:
        return False
    committed(_accounts(), query["_id"])
    _store_owed(merchant_id, m.member_id, m.cause.key, doc)
    if m.growth:
        sync_growth(merchant_id, m.member_id)
    return True


class PointsStore(PointsLedger):
    """The PointsLedger port: the ledger's entries and growth, and the points accounts."""

    async def entries(self, merchant_id: str, member_id: str) -> list[PointsEntry]:
        """The whole ledger, newest first, with what each movement changed."""
        docs = await run_sync(lambda: list(_ledger().find(
            {"merchant_id": merchant_id, "member_id": member_id}, {"outbox": 0}).sort("_id", DESCENDING)))
        return [entry_of(d) for d in docs]

    async def book(self, merchant_id: str, member_id: str) -> PointsBook | None:
        doc = await run_sync(_accounts().find_one, {"_id": account_id(merchant_id, member_id),
                                                    "merchant_id": merchant_id}, {"outbox": 0, "pending": 0})
        return _book(doc) if doc else None

    async def opening(self, merchant_id: str, member_id: str, time_zone: str, expiry_years: int) -> PointsBook:
        """The account a member without one starts with (from the ledger before accounts)."""
        return _book(await run_sync(self._opening_doc, merchant_id, member_id, time_zone, expiry_years))

    @staticmethod
    def _opening_doc(merchant_id: str, member_id: str, time_zone: str, expiry_years: int) -> dict:
        legacy = [d for d in _ledger().find({"merchant_id": merchant_id, "member_id": member_id}, {"outbox": 0})
                  if not d.get("kind")]
        return _opened(merchant_id, member_id, legacy, time_zone, expiry_years)

    async def move(self, merchant_id: str, movement: Movement, entry: PointsEntry, channel: str = "",
                   opening: PointsBook | None = None) -> bool:
        """Applies the movement (opening the account first when `opening` is given);
        False when a guard did not hold."""
        opened = _opened_from_book(opening) if opening is not None else None
        return await run_sync(move, merchant_id, movement, entry, channel, opened)

    async def open(self, book: PointsBook) -> None:
        await run_sync(_open, _opened_from_book(book))

    async def set_unfreeze(self, merchant_id: str, member_id: str, order_id: str, at_ms: int) -> bool:
        """The order's frozen lot unfreezes at `at_ms`; False when the account has no
        frozen lot for the order."""
        result = await run_sync(_accounts().update_one,
                                {"_id": account_id(merchant_id, member_id), "merchant_id": merchant_id,
                                 f"frozen_lots.{order_id}": {"$exists": True}},
                                {"$set": {f"frozen_lots.{order_id}.unfreeze_ms": at_ms},
                                 "$min": {"unfreeze_due_ms": at_ms}})
        return result.matched_count == 1

    async def claim(self, due_field: str, now_ms: int) -> tuple[str, str] | None:
        """One account whose `due_field` (unfreeze_due_ms, due_ms) has come, leased to this
        caller for 30 s so other replicas take other accounts."""
        lease = "unfreeze_lease_ms" if due_field == "unfreeze_due_ms" else "expiry_lease_ms"
        doc = await run_sync(_accounts().find_one_and_update,
                             {due_field: {"$lte": now_ms}, lease: {"$lt": now_ms}},
                             {"$set": {lease: now_ms + LEASE_MS}}, projection={"merchant_id": 1, "member_id": 1},
                             return_document=ReturnDocument.AFTER)
        return (doc["merchant_id"], doc["member_id"]) if doc else None

    async def set_due(self, merchant_id: str, member_id: str, due_field: str, seen: int | None, next_ms: int) -> None:
        """Moves a due time on, unless it changed since it was read (then it is earlier)."""
        query: dict = {"_id": account_id(merchant_id, member_id), "merchant_id": merchant_id, due_field: seen}
        await run_sync(_accounts().update_one, query, {"$set": {due_field: next_ms}})

    async def due_of(self, merchant_id: str, member_id: str) -> dict:
        doc = await run_sync(_accounts().find_one, {"_id": account_id(merchant_id, member_id),
                                                    "merchant_id": merchant_id}, {"due_ms": 1, "unfreeze_due_ms": 1})
        return doc or {}

    async def entry(self, merchant_id: str, cause: Cause) -> PointsEntry | None:
        doc = await run_sync(_ledger().find_one, {"merchant_id": merchant_id, "source": cause.source,
                                                  "source_id": cause.source_id, "kind": cause.kind}, {"outbox": 0})
        return entry_of(doc) if doc else None

    async def page(self, merchant_id: str, member_id: str, before_id: str, limit: int) -> list[PointsEntry]:
        """Newest first, ids below `before_id` when given."""
        query: dict = {"merchant_id": merchant_id, "member_id": member_id}
        if before_id:
            query["_id"] = {"$lt": before_id}
        docs = await run_sync(lambda: list(_ledger().find(query, {"outbox": 0}).sort("_id", DESCENDING).limit(limit)))
        return [entry_of(d) for d in docs]

    async def entries_of_order(self, merchant_id: str, member_id: str, order_id: str) -> list[PointsEntry]:
        """The order's own entries (earning, also from before kinds; hold, spend …) and its
        refunds' reversals."""
        def read() -> list[dict]:
            own = list(_ledger().find({"merchant_id": merchant_id, "source": "ORDER", "source_id": order_id,
                                       "member_id": member_id}, {"outbox": 0}))
            refunds = list(_ledger().find({"merchant_id": merchant_id, "member_id": member_id, "order_id": order_id,
                                           "kind": REVERSE}, {"outbox": 0}))
            return own + refunds
        return [entry_of(d) for d in await run_sync(read)]

    async def repair(self, now_ms: int, limit: int = 100) -> int:
        """Stores the entries accounts owe for longer than 30 s; how many it stored."""
        return await run_sync(_repair, now_ms, limit)


def _opened_from_book(book: PointsBook) -> dict:
    return {"_id": account_id(book.merchant_id, book.member_id), "member_id": book.member_id,
            "merchant_id": book.merchant_id, "balance": book.balance,
            "available": book.available, "frozen": book.frozen, "held": book.held, "owed": book.owed,
            "lots": dict(book.lots),
            "frozen_lots": {o: {"points": lot.points, "key": lot.key, "unfreeze_ms": lot.unfreeze_ms}
                            for o, lot in book.frozen_lots.items()},
            "holds": {o: {"points": h.points, "takes": dict(h.takes)} for o, h in book.holds.items()},
            "done": {k: 0 for k in book.done}, "pending": {}, "pending_count": 0, "unfreeze_lease_ms": 0,
            "expiry_lease_ms": 0, **for_insert()}


def _repair(now_ms: int, limit: int) -> int:
    stored = 0
    for doc in _accounts().find({"pending_count": {"$gt": 0}}, {"merchant_id": 1, "member_id": 1,
                                                                "pending": 1}).limit(limit):
        for ck, owed in (doc.get("pending") or {}).items():
            if int(owed.get("created_ms") or 0) > now_ms - REPAIR_AFTER_MS:
                continue
            fresh = _store_owed(doc["merchant_id"], doc["member_id"], ck, _from_owed(owed))
            stored += fresh
            if fresh and owed.get("growth"):
                sync_growth(doc["merchant_id"], doc["member_id"])  # the crash came before the sync
    return stored

