"""Settlement and the payment split in MongoDB: the settle job's scan over orders, split
records (one per order, versioned), split postings (one per split and per reversal, by
business day), split settings (one per merchant), and the reads of the payment ledger and
of payments the finance desk needs. Blocking parts run through siyu_kit.db.run_sync."""
from __future__ import annotations

from datetime import date, datetime, timezone
from dataclasses import asdict
from typing import Any

from mongoengine import DateTimeField, DictField, Document, IntField, ListField, StringField
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from siyu_kit.db import run_sync
from siyu_kit.protos import aware
from siyu_kit.repository import save_change

from services.order.adapters.documents import OrderDoc, PaymentDoc, order_of
from services.order.adapters.ledger import LedgerEntryDoc
from services.order.domain import ledger as ledger_rules
from services.order.domain.finance import Movement, Posting
from services.order.domain.orders import Order
from services.order.domain.split import (Figures, OwedCommission, Part, Reversal, SettledLine, SettledOrder, Share,
                                         ShareReturn, SplitLine, SplitRecord, SplitSettings)

# The settle job's scan: completed orders not yet settled, by the earliest time they may
# settle (settle_ms, written at completion and moved on while the window is open).
SETTLE_SCAN_INDEX = [("settle_open", ASCENDING), ("settle_ms", ASCENDING)]
# The finance desk reads a merchant's ledger entries of a business day.
LEDGER_DAY_INDEX = [("merchant_id", ASCENDING), ("at", ASCENDING)]
# Times of an order written by $set: read back through `aware` (the embedded server keeps a string).
_ORDER_DATES = ("created_at", "expires_at", "paid_at", "cancelled_at", "delivered_at", "completed_at", "settled_at")


class SplitRecordDoc(Document):
    id = StringField(primary_key=True)  # spl_… (from the order id)
    merchant_id = StringField(required=True)
    order_id = StringField(required=True)
    payment_id = StringField()
    settled_at = DateTimeField(required=True)
    settings = DictField()
    lines = ListField(DictField())
    seen = DictField()
    initial = DictField()
    current = DictField()
    ledger_matches = IntField()
    share_state = StringField()
    shares = ListField(DictField())
    accounts = DictField()
    reversals = ListField(DictField())
    returns = ListField(DictField())
    # 1 while a share or a share return is not finished at the provider (the execution job).
    work = IntField()
    version = IntField(required=True)

    meta = {"collection": "order_splits", "strict": False,
            "indexes": [{"fields": ["merchant_id", "order_id"], "unique": True}, {"fields": ["work"]}]}


class SplitPostingDoc(Document):
    id = StringField(primary_key=True)  # the split id, or "<split id>:<refund id>"
    merchant_id = StringField(required=True)
    order_id = StringField(required=True)
    kind = StringField(required=True)  # SPLIT or REVERSAL
    day = StringField(required=True)  # yyyy-mm-dd, Asia/Shanghai
    figures = DictField()
    shared = DictField()

    meta = {"collection": "split_postings", "strict": False,
            "indexes": [{"fields": ["merchant_id", "day"]}]}


class SplitSettingsDoc(Document):
    id = StringField(primary_key=True)  # the merchant id
    platform_fee_bp = IntField()
    provider_fee_bp = IntField()
    max_share_bp = IntField()
    platform_account = StringField()

    meta = {"collection": "split_settings", "strict": False}


def ensure_indexes() -> None:
    for doc in (SplitRecordDoc, SplitPostingDoc, SplitSettingsDoc):
        doc.ensure_indexes()
    OrderDoc._get_collection().create_index(SETTLE_SCAN_INDEX)
    LedgerEntryDoc._get_collection().create_index(LEDGER_DAY_INDEX)


# ---- documents ⇄ domain ----------------------------------------------------------------

def figures_doc(f: Figures) -> dict:
    return {"gross": f.gross, "provider_net": f.provider_net, "provider_fee": f.provider_fee,
            "merchant_net": f.merchant_net, "shortfall": f.shortfall,
            "parts": [{"kind": p.kind, "party_id": p.party_id, "amount": p.amount} for p in f.parts]}


def figures_of(d: dict) -> Figures:
    return Figures(gross=d["gross"], provider_net=d["provider_net"], provider_fee=d["provider_fee"],
                   merchant_net=d["merchant_net"], shortfall=d["shortfall"],
                   parts=tuple(Part(p["kind"], p["party_id"], p["amount"]) for p in d.get("parts") or ()))


def _seen_doc(o: SettledOrder) -> dict:
    return {"payment_id": o.payment_id, "balance_paid": o.balance_paid, "provider_paid": o.provider_paid,
            "balance_refunded": o.balance_refunded, "provider_refunded": o.provider_refunded,
            "lines": [{"line_id": l.line_id, "sku_id": l.sku_id, "quantity": l.quantity,
                       "refunded_quantity": l.refunded_quantity} for l in o.lines],
            "commissions": [{"line_id": c.line_id, "level": c.level, "beneficiary_id": c.beneficiary_id,
                             "amount": c.amount, "voided": c.voided} for c in o.commissions]}


def _seen_of(order_id: str, merchant_id: str, d: dict) -> SettledOrder:
    return SettledOrder(order_id=order_id, merchant_id=merchant_id, payment_id=d.get("payment_id", ""),
                        balance_paid=d["balance_paid"], provider_paid=d["provider_paid"],
                        balance_refunded=d.get("balance_refunded", 0), provider_refunded=d.get("provider_refunded", 0),
                        lines=tuple(SettledLine(**l) for l in d.get("lines") or ()),
                        commissions=tuple(OwedCommission(**c) for c in d.get("commissions") or ()))


def _settings_doc(s: SplitSettings) -> dict:
    return {"platform_fee_bp": s.platform_fee_bp, "provider_fee_bp": s.provider_fee_bp,
            "max_share_bp": s.max_share_bp, "platform_account": s.platform_account}


def _ms(at: datetime) -> int:
    return int(aware(at).timestamp() * 1000)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def _changing(r: SplitRecord) -> dict[str, Any]:
    """What a saved change of a split may have changed."""
    return {"seen": _seen_doc(r.seen), "current": figures_doc(r.current), "share_state": r.share_state,
            "shares": [asdict(s) for s in r.shares],
            "reversals": [{"refund_id": x.refund_id, "at_ms": _ms(x.at), "figures": figures_doc(x.figures)}
                          for x in r.reversals],
            "returns": [asdict(x) for x in r.returns], "work": int(r.needs_work)}


def split_doc(r: SplitRecord) -> dict:
    return {"_id": r.id, "merchant_id": r.merchant_id, "order_id": r.order_id, "payment_id": r.payment_id,
            "settled_at": r.settled_at, "settings": _settings_doc(r.settings),
            "lines": [asdict(l) for l in r.lines], "initial": figures_doc(r.initial),
            "ledger_matches": int(r.ledger_matches), "accounts": dict(r.accounts), "version": r.version,
            **_changing(r)}


def split_of(d: dict) -> SplitRecord:
    return SplitRecord(
        id=d["_id"], merchant_id=d["merchant_id"], order_id=d["order_id"], payment_id=d.get("payment_id") or "",
        settled_at=aware(d["settled_at"]), settings=SplitSettings(**d["settings"]),
        lines=tuple(SplitLine(**l) for l in d.get("lines") or ()),
        seen=_seen_of(d["order_id"], d["merchant_id"], d["seen"]), initial=figures_of(d["initial"]),
        current=figures_of(d["current"]), ledger_matches=bool(d.get("ledger_matches")),
        share_state=d.get("share_state") or "", shares=tuple(Share(**s) for s in d.get("shares") or ()),
        accounts=dict(d.get("accounts") or {}),
        reversals=tuple(Reversal(x["refund_id"], _at(x["at_ms"]), figures_of(x["figures"]))
                        for x in d.get("reversals") or ()),
        returns=tuple(ShareReturn(**x) for x in d.get("returns") or ()), version=d["version"])


# ---- repositories -----------------------------------------------------------------------

class MongoSettleCandidates:
    """The SettleCandidates port over the orders collection (fields written by the order
    repository at completion and settlement)."""

    @staticmethod
    def _due(now_ms: int, limit: int) -> list[Order]:
        cursor = OrderDoc._get_collection().find({"settle_open": 1, "settle_ms": {"$lte": now_ms}},
                                                 {"outbox": 0}).sort("settle_ms", ASCENDING).limit(limit)
        return [order_of({**d, **{k: aware(d[k]) for k in _ORDER_DATES if d.get(k) is not None}}) for d in cursor]

    async def due(self, now_ms: int, limit: int) -> list[Order]:
        return await run_sync(self._due, now_ms, limit)

    @staticmethod
    def _postpone(merchant_id: str, order_id: str, until_ms: int, scanned_ms: int) -> None:
        OrderDoc._get_collection().update_one({"_id": order_id, "merchant_id": merchant_id, "settle_open": 1,
                                               "settle_ms": {"$lte": scanned_ms}}, {"$set": {"settle_ms": until_ms}})

    async def postpone(self, merchant_id: str, order_id: str, until_ms: int, scanned_ms: int) -> None:
        await run_sync(self._postpone, merchant_id, order_id, until_ms, scanned_ms)

    @staticmethod
    def _recheck(merchant_id: str, now_ms: int) -> None:
        OrderDoc._get_collection().update_many({"merchant_id": merchant_id, "settle_open": 1,
                                                "settle_ms": {"$gt": now_ms}}, {"$set": {"settle_ms": now_ms + 1}})

    async def recheck(self, merchant_id: str, now_ms: int) -> None:
        await run_sync(self._recheck, merchant_id, now_ms)


class MongoSplitRecords:
    @staticmethod
    def _c():
        return SplitRecordDoc._get_collection()

    def _get(self, merchant_id: str, order_id: str) -> SplitRecord | None:
        d = self._c().find_one({"merchant_id": merchant_id, "order_id": order_id})
        return split_of(d) if d else None

    async def get(self, merchant_id: str, order_id: str) -> SplitRecord | None:
        return await run_sync(self._get, merchant_id, order_id)

    def _add(self, record: SplitRecord) -> bool:
        try:
            self._c().insert_one(split_doc(record))
        except DuplicateKeyError:
            return False
        return True

    async def add(self, record: SplitRecord) -> bool:
        record.pull_events()
        return await run_sync(self._add, record)

    async def save(self, record: SplitRecord) -> None:
        if not record.pull_events():
            return
        await run_sync(save_change, self._c(), {"_id": record.id, "merchant_id": record.merchant_id},
                       {"$set": _changing(record)}, version=record.version)
        record.version += 1

    def _needing_work(self, limit: int) -> list[SplitRecord]:
        return [split_of(d) for d in self._c().find({"work": 1}).limit(limit)]

    async def needing_work(self, limit: int) -> list[SplitRecord]:
        return await run_sync(self._needing_work, limit)


class MongoSplitPostings:
    @staticmethod
    def _c():
        return SplitPostingDoc._get_collection()

    def _add(self, merchant_id: str, p: Posting) -> None:
        try:
            self._c().insert_one({"_id": p.posting_id, "merchant_id": merchant_id, "order_id": p.order_id,
                                  "kind": p.kind, "day": p.day.isoformat(), "figures": figures_doc(p.figures),
                                  "shared": dict(p.shared)})
        except DuplicateKeyError:
            pass  # posted already (a replayed event)

    async def add(self, merchant_id: str, posting: Posting) -> None:
        await run_sync(self._add, merchant_id, posting)

    def _of_days(self, merchant_id: str, first: date, last: date) -> list[Posting]:
        cursor = self._c().find({"merchant_id": merchant_id,
                                 "day": {"$gte": first.isoformat(), "$lte": last.isoformat()}})
        return [Posting(posting_id=d["_id"], kind=d["kind"], order_id=d["order_id"], day=date.fromisoformat(d["day"]),
                        figures=figures_of(d["figures"]), shared=dict(d.get("shared") or {})) for d in cursor]

    async def of_days(self, merchant_id: str, first: date, last: date) -> list[Posting]:
        return await run_sync(self._of_days, merchant_id, first, last)


class MongoSplitSettings:
    @staticmethod
    def _of(merchant_id: str) -> SplitSettings:
        d = SplitSettingsDoc._get_collection().find_one({"_id": merchant_id})
        if not d:
            return SplitSettings()
        return SplitSettings(platform_fee_bp=d.get("platform_fee_bp", 0), provider_fee_bp=d.get("provider_fee_bp", 60),
                             max_share_bp=d.get("max_share_bp", 3000), platform_account=d.get("platform_account") or "")

    async def of_merchant(self, merchant_id: str) -> SplitSettings:
        return await run_sync(self._of, merchant_id)

    @staticmethod
    def _save(merchant_id: str, s: SplitSettings) -> None:
        SplitSettingsDoc._get_collection().update_one({"_id": merchant_id}, {"$set": _settings_doc(s)}, upsert=True)

    async def save(self, merchant_id: str, settings: SplitSettings) -> SplitSettings:
        await run_sync(self._save, merchant_id, settings)
        return settings


class MongoLedgerDays:
    """The LedgerDays port over the payment ledger (entries are inserted once, with `at`)."""

    @staticmethod
    def _between(merchant_id: str, start: datetime, end: datetime) -> list[Movement]:
        cursor = LedgerEntryDoc._get_collection().find({"merchant_id": merchant_id,
                                                        "at": {"$gte": start, "$lt": end}})
        return [Movement(kind=d["kind"], amount=d["amount"],
                         our_id=(d.get("refund_id") or d.get("payment_id") or "")
                         if d["kind"] in (ledger_rules.REFUND, ledger_rules.BALANCE_REFUND)
                         else (d.get("payment_id") or "")) for d in cursor]

    async def between(self, merchant_id: str, start: datetime, end: datetime) -> list[Movement]:
        return await run_sync(self._between, merchant_id, start, end)

    @staticmethod
    def _balances(merchant_id: str, order_id: str) -> dict[str, int]:
        found: dict[str, int] = {}
        for d in LedgerEntryDoc._get_collection().find({"merchant_id": merchant_id, "order_id": order_id}):
            found[d["debit_account"]] = found.get(d["debit_account"], 0) + d["amount"]
            found[d["credit_account"]] = found.get(d["credit_account"], 0) - d["amount"]
        return found

    async def order_balances(self, merchant_id: str, order_id: str) -> dict[str, int]:
        return await run_sync(self._balances, merchant_id, order_id)


class MongoPaidTransactions:
    @staticmethod
    def _txn(merchant_id: str, payment_id: str) -> str:
        d = PaymentDoc._get_collection().find_one({"_id": payment_id, "merchant_id": merchant_id},
                                                  {"provider_txn_id": 1})
        return (d or {}).get("provider_txn_id") or ""

    async def provider_txn_id(self, merchant_id: str, payment_id: str) -> str:
        return await run_sync(self._txn, merchant_id, payment_id) if payment_id else ""
