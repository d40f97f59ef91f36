"""Stored value over MongoDB, implementing services.member.application.stored_value_ports.

A balance account (`balance_accounts`, one per member, `_id` "<merchant>:<member>") holds
the available and held principal and bonus, the holds per order, what each order spent
and got back, the member's recharges, the causes applied with what each did (`done`),
the ledger entries still owed (`pending`) and an outbox. A movement is ONE `update_one`
whose filter carries every guard of the movement and whose update carries the counters,
the per-order state, the cause marker, the owed entry and the event; then the entry is
inserted into `balance_entries` (unique per merchant and cause: a second insert is a
duplicate) and the debt cleared. `repair` stores what a crash left owing. A recharge is
findable by its id through `balance_recharges`. Every shape is in
tests/conformance/test_stored_value_shapes.py.
"""
from __future__ import annotations

from datetime import datetime, timezone

import mongoengine as me
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from siyu_kit.db import run_sync
from siyu_kit.events.documents import OutboxDocument
from siyu_kit.events.outbox import add_to_update, committed, for_insert
from siyu_kit.protos import epoch_ms
from siyu_kit.repository import insert_new, save_change

from services.member.adapters import stored_value_messages as messages
from services.member.domain.stored_value import (REFUNDING, BalanceBook, BalanceEntry, Movement, OrderSpend,
                                                 PackageState, Part, Recharge, RechargePackage)

LEASE_MS = 30_000
REPAIR_AFTER_MS = 30_000
NO_OUTBOX = {"outbox": 0}


class RechargePackageDoc(me.Document):
    id = me.StringField(primary_key=True)  # rcp_…
    merchant_id = me.StringField(required=True)
    name = me.StringField(required=True)
    price = me.IntField(required=True)
    bonus = me.IntField(default=0)
    state = me.StringField(required=True)
    idempotency_key = me.StringField(required=True)
    version = me.IntField(default=1)
    created_ms = me.IntField()
    updated_ms = me.IntField()
    meta = {"collection": "recharge_packages",
            "indexes": [{"fields": ["merchant_id", "idempotency_key"], "unique": True},
                        {"fields": ["merchant_id", "state", "price"]}]}


class BalanceAccountDoc(OutboxDocument):
    id = me.StringField(primary_key=True)  # "<merchant id>:<member id>"
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    principal = me.IntField(default=0)
    bonus = me.IntField(default=0)
    held_principal = me.IntField(default=0)
    held_bonus = me.IntField(default=0)
    holds = me.DictField()  # {order id: {p, b}}
    orders = me.DictField()  # {order id: {sp, sb, rp, rb}}: spent, and refunded so far
    recharges = me.DictField()  # {recharge id: the recharge}
    done = me.DictField()  # {cause key: {p, b, ms}}
    pending = me.DictField()  # {cause key: the ledger entry owed}
    pending_count = me.IntField(default=0)
    refunding_count = me.IntField(default=0)  # recharges whose provider refund is under way
    refund_lease_ms = me.IntField(default=0)
    updated_ms = me.IntField()
    meta = {"collection": "balance_accounts",
            "indexes": [{"fields": ["pending_count"]}, {"fields": ["refunding_count"]},
                        {"fields": ["outbox_pending"]}]}


class BalanceEntryDoc(me.Document):
    id = me.StringField(primary_key=True)  # bal_…
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    cause = me.StringField(required=True)
    kind = me.StringField(required=True)
    principal = me.IntField(required=True)
    bonus = me.IntField(required=True)
    cause_id = me.StringField()
    order_id = me.StringField()
    created_at = me.DateTimeField()
    meta = {"collection": "balance_entries",
            "indexes": [{"fields": ["merchant_id", "cause"], "unique": True},
                        {"fields": ["merchant_id", "member_id"]}]}


class BalanceRechargeDoc(me.Document):
    """Where a recharge is: its member (the recharge itself lives in the account)."""
    id = me.StringField(primary_key=True)  # rch_…
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    order_id = me.StringField(required=True)
    meta = {"collection": "balance_recharges", "indexes": [{"fields": ["merchant_id", "order_id"]}]}


def ensure_indexes() -> None:
    for doc in (RechargePackageDoc, BalanceAccountDoc, BalanceEntryDoc, BalanceRechargeDoc):
        doc.ensure_indexes()


def _packages() -> Collection:
    return RechargePackageDoc._get_collection()


def _accounts() -> Collection:
    return BalanceAccountDoc._get_collection()


def _ledger() -> Collection:
    return BalanceEntryDoc._get_collection()


def _recharges() -> Collection:
    return BalanceRechargeDoc._get_collection()


def outbox_collections() -> list[Collection]:
    return [_accounts()]


def account_id(merchant_id: str, member_id: str) -> str:
    return f"{merchant_id}:{member_id}"


def _at(ms) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc)


# ---- packages ---------------------------------------------------------------------------------

def _package(doc: dict) -> RechargePackage:
    return RechargePackage(id=doc["_id"], merchant_id=doc["merchant_id"], version=int(doc.get("version") or 1),
                           name=doc["name"], price=int(doc["price"]), bonus=int(doc.get("bonus") or 0),
                           state=PackageState(doc["state"]), idempotency_key=doc["idempotency_key"],
                           created_at=_at(doc["created_ms"]), updated_at=_at(doc["updated_ms"]))


class RechargePackageRepository:
    async def get(self, merchant_id: str, package_id: str) -> RechargePackage | None:
        doc = await run_sync(_packages().find_one, {"_id": package_id, "merchant_id": merchant_id}, NO_OUTBOX)
        return _package(doc) if doc else None

    async def by_key(self, merchant_id: str, key: str) -> RechargePackage | None:
        doc = await run_sync(_packages().find_one, {"merchant_id": merchant_id, "idempotency_key": key}, NO_OUTBOX)
        return _package(doc) if doc else None

    async def add(self, package: RechargePackage) -> bool:
        doc = {"_id": package.id, "merchant_id": package.merchant_id, "name": package.name, "price": package.price,
               "bonus": package.bonus, "state": package.state.value, "idempotency_key": package.idempotency_key,
               "version": package.version, "created_ms": epoch_ms(package.created_at),
               "updated_ms": epoch_ms(package.updated_at)}
        return await run_sync(insert_new, _packages(), doc)

    async def save(self, package: RechargePackage) -> None:
        await run_sync(save_change, _packages(), {"_id": package.id, "merchant_id": package.merchant_id},
                       {"$set": {"state": package.state.value, "updated_ms": epoch_ms(package.updated_at)}},
                       version=package.version)
        package.version = package.next_version

    async def page(self, merchant_id: str, before_id: str, limit: int) -> list[RechargePackage]:
        query: dict = {"merchant_id": merchant_id}
        if before_id:
            query["_id"] = {"$lt": before_id}
        docs = await run_sync(lambda: list(_packages().find(query, NO_OUTBOX).sort("_id", DESCENDING).limit(limit)))
        return [_package(d) for d in docs]

    async def active(self, merchant_id: str, limit: int) -> list[RechargePackage]:
        docs = await run_sync(lambda: list(_packages().find(
            {"merchant_id": merchant_id, "state": PackageState.ACTIVE.value}, NO_OUTBOX).sort(
            [("price", ASCENDING), ("_id", ASCENDING)]).limit(limit)))
        return [_package(d) for d in docs]


# ---- balance accounts -------------------------------------------------------------------------

def _recharge_doc(r: Recharge) -> dict:
    return {"order_id": r.order_id, "package_id": r.package_id, "principal": r.principal, "bonus": r.bonus,
            "state": r.state, "created_ms": r.created_ms, "refund_key": r.refund_key,
            "refund_reason": r.refund_reason, "refund_id": r.refund_id,
            "refund_requested_ms": r.refund_requested_ms}


def _recharge(recharge_id: str, d: dict) -> Recharge:
    return Recharge(id=recharge_id, order_id=d["order_id"], package_id=d.get("package_id") or "",
                    principal=int(d["principal"]), bonus=int(d["bonus"]), state=d["state"],
                    created_ms=int(d.get("created_ms") or 0), refund_key=d.get("refund_key") or "",
                    refund_reason=d.get("refund_reason") or "", refund_id=d.get("refund_id") or "",
                    refund_requested_ms=int(d.get("refund_requested_ms") or 0))


def _book(doc: dict) -> BalanceBook:
    return BalanceBook(
        merchant_id=doc["merchant_id"], member_id=doc["member_id"], principal=int(doc.get("principal") or 0),
        bonus=int(doc.get("bonus") or 0), held_principal=int(doc.get("held_principal") or 0),
        held_bonus=int(doc.get("held_bonus") or 0),
        holds={o: Part(int(h["p"]), int(h["b"])) for o, h in (doc.get("holds") or {}).items()},
        orders={o: OrderSpend(int(s["sp"]), int(s["sb"]), int(s.get("rp") or 0), int(s.get("rb") or 0))
                for o, s in (doc.get("orders") or {}).items()},
        recharges={r: _recharge(r, d) for r, d in (doc.get("recharges") or {}).items()},
        done={k: Part(int(v.get("p") or 0), int(v.get("b") or 0)) for k, v in (doc.get("done") or {}).items()})


def _opened(merchant_id: str, member_id: str) -> dict:
    return {"_id": account_id(merchant_id, member_id), "merchant_id": merchant_id, "member_id": member_id,
            "principal": 0, "bonus": 0, "held_principal": 0, "held_bonus": 0, "holds": {}, "orders": {},
            "recharges": {}, "done": {}, "pending": {}, "pending_count": 0, "refunding_count": 0,
            "refund_lease_ms": 0, **for_insert()}


def entry_doc(merchant_id: str, cause: str, e: BalanceEntry) -> dict:
    return {"_id": e.id, "merchant_id": merchant_id, "member_id": e.member_id, "cause": cause, "kind": e.kind,
            "principal": e.principal, "bonus": e.bonus, "cause_id": e.cause_id, "order_id": e.order_id,
            "created_at": e.created_at}


def _entry(doc: dict) -> BalanceEntry:
    created = doc.get("created_at")
    if created is None and doc.get("created_ms") is not None:
        created = _at(doc["created_ms"])
    if isinstance(created, datetime) and created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    return BalanceEntry(id=doc["_id"], member_id=doc["member_id"], kind=doc["kind"], principal=int(doc["principal"]),
                        bonus=int(doc["bonus"]), cause_id=doc.get("cause_id") or "", order_id=doc.get("order_id") or "",
                        created_at=created)


def movement_update(merchant_id: str, m: Movement, owed: dict | None, now_ms: int) -> tuple[dict, dict]:
    """The one conditional update a movement is: (filter, update without events)."""
    ck = m.cause
    o = m.order_id
    query: dict = {"_id": account_id(merchant_id, m.member_id), "merchant_id": merchant_id,
                   f"done.{ck}": {"$exists": False}}
    for c in m.not_after:
        query[f"done.{c}"] = {"$exists": False}
    for c in m.after:
        query[f"done.{c}"] = {"$exists": True}
    inc: dict = {}
    for name, delta in (("principal", m.principal), ("bonus", m.bonus), ("held_principal", m.held_principal),
                        ("held_bonus", m.held_bonus)):
        if delta:
            inc[name] = delta
            if delta < 0:
                query[name] = {"$gte": -delta}
    sets: dict = {f"done.{ck}": {"p": m.outcome.principal, "b": m.outcome.bonus, "ms": now_ms}, "updated_ms": now_ms}
    unsets: dict = {}
    if m.set_hold is not None or m.no_hold:
        query[f"holds.{o}"] = {"$exists": False}
    if m.set_hold is not None:
        sets[f"holds.{o}"] = {"p": m.set_hold.principal, "b": m.set_hold.bonus}
    if m.drop_hold is not None:
        query[f"holds.{o}.p"] = m.drop_hold.principal
        query[f"holds.{o}.b"] = m.drop_hold.bonus
        unsets[f"holds.{o}"] = ""
    if m.spend is not None:
        query[f"orders.{o}"] = {"$exists": False}
        sets[f"orders.{o}"] = {"sp": m.spend.principal, "sb": m.spend.bonus, "rp": 0, "rb": 0}
    if m.refund_from is not None:
        query[f"orders.{o}.rp"] = m.refund_from.refunded_principal
        query[f"orders.{o}.rb"] = m.refund_from.refunded_bonus
        inc[f"orders.{o}.rp"] = m.principal
        inc[f"orders.{o}.rb"] = m.bonus
    if m.recharge is not None:
        r = m.recharge
        if m.recharge_was:
            query[f"recharges.{r.id}.state"] = m.recharge_was
        else:
            query[f"recharges.{r.id}"] = {"$exists": False}
        sets[f"recharges.{r.id}"] = _recharge_doc(r)
        counted = int(r.state == REFUNDING) - int(m.recharge_was == REFUNDING)
        if counted:
            inc["refunding_count"] = counted
            if counted > 0:
                # The request asks the order service itself now; the job asks after the lease.
                sets["refund_lease_ms"] = now_ms + LEASE_MS
    if owed is not None:
        sets[f"pending.{ck}"] = owed
        inc["pending_count"] = 1
    update: dict = {"$set": sets}
    if inc:
        update["$inc"] = inc
    if unsets:
        update["$unset"] = unsets
    return query, update


def _owed(doc: dict) -> dict:
    """The entry as the account keeps it until it is stored (a datetime inside a `$set`
    comes back as a string: the time as epoch ms)."""
    return {**{k: v for k, v in doc.items() if k != "created_at"}, "created_ms": epoch_ms(doc["created_at"])}


def _from_owed(owed: dict) -> dict:
    return {**{k: v for k, v in owed.items() if k != "created_ms"}, "created_at": _at(owed["created_ms"])}


def _open(merchant_id: str, member_id: str) -> None:
    try:
        _accounts().insert_one(_opened(merchant_id, member_id))
    except DuplicateKeyError:
        pass  # opened meanwhile: the movement's guards decide


def _store_owed(merchant_id: str, member_id: str, ck: str, doc: dict) -> bool:
    """Inserts the entry (once: a second insert is a duplicate) and clears the debt."""
    try:
        _ledger().insert_one(doc)
        fresh = True
    except DuplicateKeyError:
        fresh = False
    owed = f"pending.{ck}"
    _accounts().update_one({"_id": account_id(merchant_id, member_id), "merchant_id": merchant_id,
                            owed: {"$exists": True}}, {"$unset": {owed: ""}, "$inc": {"pending_count": -1}})
    return fresh


def move(merchant_id: str, m: Movement, entry: BalanceEntry | None, movement_id: str, opening: bool) -> bool:
    """Applies the movement; False when a guard did not hold (nothing written)."""
    if opening:
        _open(merchant_id, m.member_id)
    doc = entry_doc(merchant_id, m.cause, entry) if entry is not None else None
    now_ms = epoch_ms(entry.created_at) if entry is not None else epoch_ms(datetime.now(timezone.utc))
    query, update = movement_update(merchant_id, m, _owed(doc) if doc else None, now_ms)
    event = messages.changed_event(merchant_id, m, movement_id)
    if event is not None:
        update = add_to_update(update, event)
    if _accounts().update_one(query, update).modified_count != 1:
        return False
    if event is not None:
        committed(_accounts(), query["_id"])
    if doc is not None:
        _store_owed(merchant_id, m.member_id, m.cause, doc)
    return True


def _repair(now_ms: int, limit: int) -> int:
    stored = 0
    for doc in _accounts().find({"pending_count": {"$gt": 0}}, {"merchant_id": 1, "member_id": 1,
                                                                "pending": 1}).limit(limit):
        for ck, owed in (doc.get("pending") or {}).items():
            if int(owed.get("created_ms") or 0) > now_ms - REPAIR_AFTER_MS:
                continue
            stored += _store_owed(doc["merchant_id"], doc["member_id"], ck, _from_owed(owed))
    return stored


def _index(merchant_id: str, member_id: str, recharge: Recharge) -> None:
    try:
        _recharges().insert_one({"_id": recharge.id, "merchant_id": merchant_id, "member_id": member_id,
                                 "order_id": recharge.order_id})
    except DuplicateKeyError:
        pass  # indexed by an earlier delivery


class BalanceRepository:
    """The BalanceStore port."""

    async def book(self, merchant_id: str, member_id: str) -> BalanceBook | None:
        doc = await run_sync(_accounts().find_one, {"_id": account_id(merchant_id, member_id),
                                                    "merchant_id": merchant_id}, {"outbox": 0, "pending": 0})
        return _book(doc) if doc else None

    async def move(self, merchant_id: str, movement: Movement, entry: BalanceEntry | None, movement_id: str,
                   opening: bool) -> bool:
        return await run_sync(move, merchant_id, movement, entry, movement_id, opening)

    async def page(self, merchant_id: str, member_id: str, before_id: str, limit: int) -> list[BalanceEntry]:
        query: dict = {"merchant_id": merchant_id, "member_id": member_id}
        if before_id:
            query["_id"] = {"$lt": before_id}
        docs = await run_sync(lambda: list(_ledger().find(query).sort("_id", DESCENDING).limit(limit)))
        return [_entry(d) for d in docs]

    async def entries(self, merchant_id: str, member_id: str) -> list[BalanceEntry]:
        docs = await run_sync(lambda: list(_ledger().find({"merchant_id": merchant_id, "member_id": member_id})
                                           .sort("_id", DESCENDING)))
        return [_entry(d) for d in docs]

    async def index_recharge(self, merchant_id: str, member_id: str, recharge: Recharge) -> None:
        await run_sync(_index, merchant_id, member_id, recharge)

    async def member_of_recharge(self, merchant_id: str, recharge_id: str) -> str | None:
        doc = await run_sync(_recharges().find_one, {"_id": recharge_id, "merchant_id": merchant_id})
        return doc["member_id"] if doc else None

    async def claim_refunding(self, now_ms: int) -> tuple[str, str] | None:
        doc = await run_sync(_accounts().find_one_and_update,
                             {"refunding_count": {"$gt": 0}, "refund_lease_ms": {"$lt": now_ms}},
                             {"$set": {"refund_lease_ms": now_ms + LEASE_MS}},
                             projection={"merchant_id": 1, "member_id": 1}, return_document=ReturnDocument.AFTER)
        return (doc["merchant_id"], doc["member_id"]) if doc else None

    async def repair(self, now_ms: int, limit: int = 100) -> int:
        return await run_sync(_repair, now_ms, limit)
