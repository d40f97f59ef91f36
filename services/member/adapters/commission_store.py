"""Commission records, balances, withdrawals and withdrawal terms over MongoDB,
implementing services.member.application.commission_ports.

- `commission_records`: one per order, line and level (`_id` "<order>:<line>:<level>"); a
  change is conditional on the stage and voided part as read, so a late event never
  moves a record back. `credited` is what the balance has received from the record.
- `commission_accounts`: one per beneficiary (`_id` "<merchant>:<beneficiary>"), of a
  bounded size: the counters, the current business day's withdrawals (`days`, one key),
  the movements under way (`pending.<subject>`: the cause, the ledger entry it owes and
  the record's credited value to write) and the release counters (`cleared.<bucket>`,
  at most BUCKETS keys). A movement is ONE `update_one` whose filter carries its guards
  and whose update carries the counters and the subject under way — the stored-value
  balance's pattern (stored_value_store.py). The entry is then inserted into
  `commission_entries` (unique per merchant and cause); a record movement writes the
  record's credited value and releases its subject; a withdrawal movement is released by
  the use case once the withdrawal's own state records it. `repair` finishes what a crash
  left under way.
- `withdrawals` (the aggregate, versioned, with a job lease) and `withdrawal_settings`.
Every shape is in tests/conformance/test_commission_shapes.py.
"""
from __future__ import annotations

from datetime import datetime, timezone

import mongoengine as me
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from services.member.adapters.stored_value_store import BalanceAccountDoc
from services.member.application.commission_ports import BalanceTotals, Liability, StateTotals
from services.member.domain.commissions import (FROZEN, PENDING, SETTLED, CommissionBook, CommissionEntry,
                                                CommissionRecord, Movement, bucket_of)
from services.member.domain.withdrawals import HOLDING, PAYING, PAID, REJECTED, FAILED, Withdrawal, WithdrawalSettings
from siyu_kit.db import run_sync
from siyu_kit.protos import epoch_ms
from siyu_kit.repository import insert_new, save_change

REPAIR_AFTER_MS = 30_000


class CommissionRecordDoc(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    order_id = me.StringField(required=True)
    beneficiary_id = me.StringField(required=True)
    state = me.StringField(required=True)
    meta = {"collection": "commission_records",
            "indexes": [{"fields": ["merchant_id", "order_id"]},
                        {"fields": ["merchant_id", "beneficiary_id", "state"]},
                        {"fields": ["merchant_id", "state"]}]}


class CommissionAccountDoc(me.Document):
    id = me.StringField(primary_key=True)  # "<merchant>:<beneficiary>"
    merchant_id = me.StringField(required=True)
    beneficiary_id = me.StringField(required=True)
    pending_count = me.IntField(default=0)
    meta = {"collection": "commission_accounts",
            "indexes": [{"fields": ["merchant_id", "beneficiary_id"]}, {"fields": ["pending_count"]}]}


class CommissionEntryDoc(me.Document):
    id = me.StringField(primary_key=True)  # cme_…
    merchant_id = me.StringField(required=True)
    beneficiary_id = me.StringField(required=True)
    cause = me.StringField(required=True)
    meta = {"collection": "commission_entries",
            "indexes": [{"fields": ["merchant_id", "cause"], "unique": True},
                        {"fields": ["merchant_id", "beneficiary_id"]}]}


class WithdrawalDoc(me.Document):
    id = me.StringField(primary_key=True)  # wdr_…
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    idempotency_key = me.StringField(required=True)
    state = me.StringField(required=True)
    work = me.IntField(default=0)  # 1 while the job has something to finish
    lease_ms = me.IntField(default=0)
    meta = {"collection": "withdrawals",
            "indexes": [{"fields": ["merchant_id", "member_id", "idempotency_key"], "unique": True},
                        {"fields": ["merchant_id", "state"]},
                        {"fields": ["work", "lease_ms"]}]}


class WithdrawalSettingsDoc(me.Document):
    id = me.StringField(primary_key=True)  # the merchant id
    meta = {"collection": "withdrawal_settings"}


def ensure_indexes() -> None:
    for doc in (CommissionRecordDoc, CommissionAccountDoc, CommissionEntryDoc, WithdrawalDoc, WithdrawalSettingsDoc):
        doc.ensure_indexes()


def _records() -> Collection:
    return CommissionRecordDoc._get_collection()


def _accounts() -> Collection:
    return CommissionAccountDoc._get_collection()


def _ledger() -> Collection:
    return CommissionEntryDoc._get_collection()


def _withdrawals() -> Collection:
    return WithdrawalDoc._get_collection()


def _settings() -> Collection:
    return WithdrawalSettingsDoc._get_collection()


def _at(ms) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc)


def account_id(merchant_id: str, beneficiary_id: str) -> str:
    return f"{merchant_id}:{beneficiary_id}"


# ---- records ---------------------------------------------------------------------------------

def record_doc(r: CommissionRecord) -> dict:
    return {"_id": r.id, "merchant_id": r.merchant_id, "order_id": r.order_id, "line_id": r.line_id,
            "level": r.level, "beneficiary_id": r.beneficiary_id, "buyer_id": r.buyer_id, "rate_bp": r.rate_bp,
            "base": r.base, "amount": r.amount, "voided": r.voided, "stage": r.stage, "state": r.state,
            "net": r.net, "created_ms": epoch_ms(r.created_at), "updated_ms": epoch_ms(r.updated_at)}


def _record(d: dict) -> CommissionRecord:
    return CommissionRecord(id=d["_id"], merchant_id=d["merchant_id"], order_id=d["order_id"], line_id=d["line_id"],
                            level=d["level"], beneficiary_id=d["beneficiary_id"], buyer_id=d.get("buyer_id") or "",
                            rate_bp=int(d["rate_bp"]), base=int(d["base"]), amount=int(d["amount"]),
                            voided=int(d["voided"]), stage=d["stage"], created_at=_at(d["created_ms"]),
                            updated_at=_at(d["updated_ms"]),
                            credited=None if d.get("credited") is None else int(d["credited"]))


def _save_record(record: CommissionRecord, was: CommissionRecord | None) -> bool:
    doc = record_doc(record)
    if was is None:
        return insert_new(_records(), doc)
    query = {"_id": record.id, "merchant_id": record.merchant_id, "stage": was.stage, "voided": was.voided}
    sets = {k: doc[k] for k in ("stage", "state", "voided", "net", "updated_ms")}
    return _records().update_one(query, {"$set": sets}).modified_count == 1


def _totals(query: dict) -> StateTotals:
    sums = {PENDING: 0, FROZEN: 0, SETTLED: 0}
    void = 0
    for d in _records().find(query, {"state": 1, "net": 1, "voided": 1}):
        if d["state"] in sums:
            sums[d["state"]] += int(d["net"])
        void += int(d["voided"])
    return StateTotals(pending=sums[PENDING], frozen=sums[FROZEN], settled=sums[SETTLED], void=void)


# ---- balances --------------------------------------------------------------------------------

BOOK_FIELDS = {"available": 1, "withdrawing": 1, "withdrawn": 1, "debt": 1, "days": 1, "cleared": 1,
               "pending": 1, "beneficiary_id": 1}


def _book(merchant_id: str, beneficiary_id: str, doc: dict | None) -> CommissionBook:
    if doc is None:
        return CommissionBook(merchant_id=merchant_id, beneficiary_id=beneficiary_id)
    return CommissionBook(merchant_id=merchant_id, beneficiary_id=beneficiary_id,
                          available=int(doc.get("available") or 0), withdrawing=int(doc.get("withdrawing") or 0),
                          withdrawn=int(doc.get("withdrawn") or 0), debt=int(doc.get("debt") or 0),
                          moving={k: v["cause"] for k, v in (doc.get("pending") or {}).items()},
                          cleared={k: int(v) for k, v in (doc.get("cleared") or {}).items()},
                          days={k: int(v) for k, v in (doc.get("days") or {}).items()})


def _opened(merchant_id: str, beneficiary_id: str) -> dict:
    return {"_id": account_id(merchant_id, beneficiary_id), "merchant_id": merchant_id,
            "beneficiary_id": beneficiary_id, "available": 0, "withdrawing": 0, "withdrawn": 0, "debt": 0,
            "days": {}, "pending": {}, "pending_count": 0, "cleared": {}}


def _key(subject: str) -> str:
    """A subject as a map key: record ids hold ':' (allowed), never '.' or a leading '$'."""
    return subject.replace(".", "_")


def movement_update(merchant_id: str, m: Movement, owed: dict, now_ms: int) -> tuple[dict, dict]:
    """The one conditional update a movement is: (filter, update). `owed` is the ledger
    entry it owes, kept with the subject until stored."""
    sk = _key(m.subject)
    cleared = f"cleared.{m.bucket}"
    query: dict = {"_id": account_id(merchant_id, m.beneficiary_id), "merchant_id": merchant_id,
                   f"pending.{sk}": {"$exists": False},
                   cleared: {"$exists": False} if m.cleared_was is None else m.cleared_was}
    inc: dict = {}
    for name, delta in (("available", m.available), ("debt", m.debt), ("withdrawing", m.withdrawing),
                        ("withdrawn", m.withdrawn)):
        if delta:
            inc[name] = delta
            if delta < 0:
                query[name] = {"$gte": -delta}
    if m.exact_available is not None:
        query["available"] = m.exact_available
    if m.exact_debt is not None:
        query["debt"] = m.exact_debt
    moving = {"cause": m.cause, "entry": owed, "record_id": m.record_id, "withdrawal_id": m.withdrawal_id,
              "was": m.credited_was, "now": m.credited_now, "created_ms": now_ms}
    sets: dict = {f"pending.{sk}": moving, "updated_ms": now_ms}
    inc["pending_count"] = 1
    if m.day:
        field = f"days.{m.day}"
        if m.day_used is None:
            # The day's first withdrawal: the whole map becomes this day, so past days vanish.
            query[field] = {"$exists": False}
            sets["days"] = {m.day: m.withdrawing}
        else:
            query[field] = {"$lte": m.day_limit - m.withdrawing}
            inc[field] = m.withdrawing
    return query, {"$set": sets, "$inc": inc}


def release_update(merchant_id: str, beneficiary_id: str, subject: str, cause: str) -> tuple[dict, dict]:
    """Ends a subject's movement (once): the mark goes, its bucket's counter moves. Only the
    movement of that cause: a late release must not end the subject's next movement."""
    sk = _key(subject)
    return ({"_id": account_id(merchant_id, beneficiary_id), "merchant_id": merchant_id,
             f"pending.{sk}.cause": cause},
            {"$unset": {f"pending.{sk}": ""}, "$inc": {"pending_count": -1, f"cleared.{bucket_of(subject)}": 1}})


def credited_update(merchant_id: str, record_id: str, was: int | None, now: int) -> tuple[dict, dict]:
    """The record's credited value, moved on from what the movement read."""
    return ({"_id": record_id, "merchant_id": merchant_id,
             "credited": {"$exists": False} if was is None else was}, {"$set": {"credited": now}})


def entry_doc(merchant_id: str, e: CommissionEntry) -> dict:
    return {"_id": e.id, "merchant_id": merchant_id, "beneficiary_id": e.beneficiary_id, "cause": e.cause,
            "kind": e.kind, "available": e.available, "debt": e.debt, "withdrawing": e.withdrawing,
            "withdrawn": e.withdrawn, "record_id": e.record_id, "withdrawal_id": e.withdrawal_id,
            "created_ms": epoch_ms(e.created_at)}


def _entry(d: dict) -> CommissionEntry:
    return CommissionEntry(id=d["_id"], beneficiary_id=d["beneficiary_id"], cause=d["cause"], kind=d["kind"],
                           available=int(d["available"]), debt=int(d["debt"]), withdrawing=int(d["withdrawing"]),
                           withdrawn=int(d["withdrawn"]), record_id=d.get("record_id") or "",
                           withdrawal_id=d.get("withdrawal_id") or "", created_at=_at(d["created_ms"]))


def _store_entry(doc: dict) -> bool:
    """Inserts the entry once (a second insert is a duplicate of its cause)."""
    try:
        _ledger().insert_one(doc)
        return True
    except DuplicateKeyError:
        return False


def _release(merchant_id: str, beneficiary_id: str, subject: str, cause: str) -> bool:
    return _accounts().update_one(*release_update(merchant_id, beneficiary_id, subject, cause)).modified_count == 1


def _finish_record(merchant_id: str, beneficiary_id: str, subject: str, moving: dict) -> None:
    """A record movement after its update: the entry, the record's credited value, the release.
    Each step is idempotent, so the mover, a later delivery and the repair may all run it."""
    _store_entry(moving["entry"])
    query, update = credited_update(merchant_id, moving["record_id"], moving.get("was"), int(moving.get("now") or 0))
    _records().update_one(query, update)
    _release(merchant_id, beneficiary_id, subject, moving["cause"])


def move(merchant_id: str, m: Movement, entry: CommissionEntry) -> bool:
    try:
        _accounts().insert_one(_opened(merchant_id, m.beneficiary_id))
    except DuplicateKeyError:
        pass  # opened before: the movement's guards decide
    doc = entry_doc(merchant_id, entry)
    query, update = movement_update(merchant_id, m, doc, doc["created_ms"])
    if _accounts().update_one(query, update).modified_count != 1:
        return False
    if m.record_id:
        _finish_record(merchant_id, m.beneficiary_id, m.subject, update["$set"][f"pending.{_key(m.subject)}"])
    else:
        _store_entry(doc)  # released by the use case once the withdrawal records it
    return True


def _finish(merchant_id: str, beneficiary_id: str, subject: str) -> None:
    sk = _key(subject)
    doc = _accounts().find_one({"_id": account_id(merchant_id, beneficiary_id), "merchant_id": merchant_id},
                               {"pending": 1})  # small: only what is under way
    moving = ((doc or {}).get("pending") or {}).get(sk)
    if moving is None:
        return
    if moving.get("record_id"):
        _finish_record(merchant_id, beneficiary_id, subject, moving)
    else:
        _store_entry(moving["entry"])


def _withdrawal_recorded(merchant_id: str, moving: dict) -> bool:
    """Whether the withdrawal's own state shows its movement (then the mark may go)."""
    w = _withdrawals().find_one({"_id": moving.get("withdrawal_id"), "merchant_id": merchant_id},
                                {"state": 1, "booked": 1})
    if w is None:
        return False
    if moving["cause"].startswith("hold:"):
        return w["state"] != HOLDING
    return bool(w.get("booked"))


def _repair(now_ms: int, limit: int = 100) -> int:
    """Finishes movements a crash left under way (older than REPAIR_AFTER_MS): stores their
    entries, writes the records' credited values, releases what is recorded."""
    stored = 0
    for doc in _accounts().find({"pending_count": {"$gt": 0}}, {"merchant_id": 1, "beneficiary_id": 1,
                                                                "pending": 1}).limit(limit):
        merchant_id, beneficiary_id = doc["merchant_id"], doc["beneficiary_id"]
        for sk, moving in (doc.get("pending") or {}).items():
            if int(moving.get("created_ms") or 0) > now_ms - REPAIR_AFTER_MS:
                continue
            subject = moving.get("record_id") or moving["cause"]
            if moving.get("record_id"):
                stored += _store_entry(moving["entry"])
                _finish_record(merchant_id, beneficiary_id, subject, moving)
            else:
                stored += _store_entry(moving["entry"])
                if _withdrawal_recorded(merchant_id, moving):
                    _release(merchant_id, beneficiary_id, subject, moving["cause"])
    return stored


def _balance_totals(merchant_id: str) -> BalanceTotals:
    sums = {"available": 0, "withdrawing": 0, "withdrawn": 0, "debt": 0}
    for d in _accounts().find({"merchant_id": merchant_id}, {k: 1 for k in sums}):
        for k in sums:
            sums[k] += int(d.get(k) or 0)
    return BalanceTotals(**sums)


PAYEE_FIELDS = {"available": 1, "withdrawing": 1, "withdrawn": 1, "debt": 1, "beneficiary_id": 1}


class CommissionRepository:
    """The CommissionStore port."""

    async def records(self, merchant_id: str, order_id: str) -> list[CommissionRecord]:
        docs = await run_sync(lambda: list(_records().find({"merchant_id": merchant_id, "order_id": order_id})))
        return [_record(d) for d in docs]

    async def save_record(self, record: CommissionRecord, was: CommissionRecord | None) -> bool:
        return await run_sync(_save_record, record, was)

    async def book(self, merchant_id: str, beneficiary_id: str) -> CommissionBook:
        doc = await run_sync(_accounts().find_one, {"_id": account_id(merchant_id, beneficiary_id),
                                                    "merchant_id": merchant_id}, BOOK_FIELDS)
        return _book(merchant_id, beneficiary_id, doc)

    async def record(self, merchant_id: str, record_id: str) -> CommissionRecord | None:
        doc = await run_sync(_records().find_one, {"_id": record_id, "merchant_id": merchant_id})
        return _record(doc) if doc else None

    async def move(self, merchant_id: str, movement: Movement, entry: CommissionEntry) -> bool:
        return await run_sync(move, merchant_id, movement, entry)

    async def finish(self, merchant_id: str, beneficiary_id: str, subject: str) -> None:
        await run_sync(_finish, merchant_id, beneficiary_id, subject)

    async def release(self, merchant_id: str, beneficiary_id: str, cause: str) -> None:
        await run_sync(_release, merchant_id, beneficiary_id, cause, cause)

    async def entries(self, merchant_id: str, beneficiary_id: str) -> list[CommissionEntry]:
        docs = await run_sync(lambda: list(_ledger().find({"merchant_id": merchant_id,
                                                           "beneficiary_id": beneficiary_id})))
        return [_entry(d) for d in docs]

    async def page(self, merchant_id: str, beneficiary_id: str, state: str, before_id: str,
                   limit: int) -> list[CommissionRecord]:
        query: dict = {"merchant_id": merchant_id, "beneficiary_id": beneficiary_id}
        if state:
            query["state"] = state
        if before_id:
            query["_id"] = {"$lt": before_id}
        docs = await run_sync(lambda: list(_records().find(query).sort("_id", DESCENDING).limit(limit)))
        return [_record(d) for d in docs]

    async def state_totals(self, merchant_id: str, beneficiary_id: str) -> StateTotals:
        query: dict = {"merchant_id": merchant_id}
        if beneficiary_id:
            query["beneficiary_id"] = beneficiary_id
        return await run_sync(_totals, query)

    async def balance_totals(self, merchant_id: str) -> BalanceTotals:
        return await run_sync(_balance_totals, merchant_id)

    async def payees(self, merchant_id: str, after_id: str, limit: int) -> list[CommissionBook]:
        query: dict = {"merchant_id": merchant_id}
        if after_id:
            query["_id"] = {"$gt": account_id(merchant_id, after_id)}
        docs = await run_sync(lambda: list(_accounts().find(query, PAYEE_FIELDS).sort("_id", ASCENDING).limit(limit)))
        return [_book(merchant_id, d["beneficiary_id"], d) for d in docs]

    async def repair(self, now_ms: int) -> int:
        return await run_sync(_repair, now_ms)


# ---- withdrawals -----------------------------------------------------------------------------

WORK_STATES = (HOLDING, PAYING)


def _work(w: Withdrawal) -> int:
    """1 while the job has something to finish: a hold, a transfer, or a booking."""
    return int(w.state in WORK_STATES or w.owes_booking)


def withdrawal_doc(w: Withdrawal) -> dict:
    return {"_id": w.id, "merchant_id": w.merchant_id, "member_id": w.member_id, "amount": w.amount, "fee": w.fee,
            "state": w.state, "idempotency_key": w.idempotency_key, "day": w.day, "reason": w.reason,
            "provider_transfer_id": w.provider_transfer_id, "booked": int(w.booked), "work": _work(w),
            "lease_ms": epoch_ms(w.created_at) + REPAIR_AFTER_MS if w.state == HOLDING else 0,
            "version": w.version, "created_ms": epoch_ms(w.created_at), "updated_ms": epoch_ms(w.updated_at)}


def _withdrawal(d: dict) -> Withdrawal:
    return Withdrawal(id=d["_id"], merchant_id=d["merchant_id"], version=int(d.get("version") or 1),
                      member_id=d["member_id"], amount=int(d["amount"]), fee=int(d["fee"]), state=d["state"],
                      idempotency_key=d["idempotency_key"], day=d["day"], created_at=_at(d["created_ms"]),
                      updated_at=_at(d["updated_ms"]), reason=d.get("reason") or "",
                      provider_transfer_id=d.get("provider_transfer_id") or "", booked=bool(d.get("booked")))


class WithdrawalRepository:
    """The WithdrawalStore port."""

    async def get(self, merchant_id: str, withdrawal_id: str) -> Withdrawal | None:
        doc = await run_sync(_withdrawals().find_one, {"_id": withdrawal_id, "merchant_id": merchant_id})
        return _withdrawal(doc) if doc else None

    async def by_key(self, merchant_id: str, member_id: str, key: str) -> Withdrawal | None:
        doc = await run_sync(_withdrawals().find_one, {"merchant_id": merchant_id, "member_id": member_id,
                                                       "idempotency_key": key})
        return _withdrawal(doc) if doc else None

    async def add(self, withdrawal: Withdrawal) -> bool:
        return await run_sync(insert_new, _withdrawals(), withdrawal_doc(withdrawal))

    async def save(self, withdrawal: Withdrawal) -> None:
        doc = withdrawal_doc(withdrawal)
        sets = {k: doc[k] for k in ("state", "reason", "provider_transfer_id", "booked", "work", "updated_ms")}
        if withdrawal.state == PAYING:
            # The caller asks the provider now; the job only after the lease.
            sets["lease_ms"] = doc["updated_ms"] + REPAIR_AFTER_MS
        await run_sync(save_change, _withdrawals(), {"_id": withdrawal.id, "merchant_id": withdrawal.merchant_id},
                       {"$set": sets}, version=withdrawal.version)
        withdrawal.version = withdrawal.next_version

    async def page(self, merchant_id: str, member_id: str, state: str, before_id: str,
                   limit: int) -> list[Withdrawal]:
        query: dict = {"merchant_id": merchant_id, "state": {"$in": [s for s in (
            "REQUESTED", PAYING, PAID, REJECTED, FAILED) if not state or s == state]}}
        if member_id:
            query["member_id"] = member_id
        if before_id:
            query["_id"] = {"$lt": before_id}
        docs = await run_sync(lambda: list(_withdrawals().find(query).sort("_id", DESCENDING).limit(limit)))
        return [_withdrawal(d) for d in docs]

    async def claim(self, now_ms: int, lease_ms: int, stale_before_ms: int) -> Withdrawal | None:
        doc = await run_sync(_withdrawals().find_one_and_update, {"work": 1, "lease_ms": {"$lt": now_ms}},
                             {"$set": {"lease_ms": now_ms + lease_ms}}, return_document=ReturnDocument.AFTER)
        return _withdrawal(doc) if doc else None


class WithdrawalSettingsRepository:
    async def get(self, merchant_id: str) -> tuple[WithdrawalSettings, int]:
        doc = await run_sync(_settings().find_one, {"_id": merchant_id})
        if doc is None:
            return WithdrawalSettings(), 1
        return (WithdrawalSettings(min_amount=int(doc["min_amount"]), fee_bp=int(doc["fee_bp"]),
                                   daily_limit=int(doc["daily_limit"])), int(doc["version"]))

    async def put(self, merchant_id: str, settings: WithdrawalSettings, expected_version: int) -> int | None:
        fields = {"min_amount": settings.min_amount, "fee_bp": settings.fee_bp, "daily_limit": settings.daily_limit}

        def write() -> int | None:
            if expected_version == 1 and _settings().find_one({"_id": merchant_id}) is None:
                try:
                    _settings().insert_one({"_id": merchant_id, **fields, "version": 2})
                    return 2
                except DuplicateKeyError:
                    return None
            done = _settings().update_one({"_id": merchant_id, "version": expected_version},
                                          {"$set": fields, "$inc": {"version": 1}})
            return expected_version + 1 if done.modified_count == 1 else None

        return await run_sync(write)


# ---- stored value ------------------------------------------------------------------------------

def _liability(merchant_id: str) -> Liability:
    principal = bonus = count = 0
    fields = {"principal": 1, "bonus": 1, "held_principal": 1, "held_bonus": 1}
    for d in BalanceAccountDoc._get_collection().find({"merchant_id": merchant_id}, fields):
        principal += int(d.get("principal") or 0) + int(d.get("held_principal") or 0)
        bonus += int(d.get("bonus") or 0) + int(d.get("held_bonus") or 0)
        count += 1
    return Liability(principal=principal, bonus=bonus, accounts=count)


class StoredValueTotalsRepository:
    """The StoredValueTotals port: the members' balance accounts, added up in Python (a
    `$group` over them is outside the embedded server's portable subset)."""

    async def liability(self, merchant_id: str) -> Liability:
        return await run_sync(_liability, merchant_id)

