"""The query and update shapes of commissions and withdrawals
(services/member/adapters/commission_store.py): each balance movement's one conditional
update as the store builds it (record credit guards, exact available/debt, the day
counter's absent-or-within-limit guard, causes applied once), the record's forward-only
update, the totals and pages, the withdrawal job's claim, and the stored-value liability's
read."""
from __future__ import annotations

from datetime import datetime, timezone

from pymongo import ASCENDING, DESCENDING, ReturnDocument

from siyu_kit.ids import new_id
from tests.support import new_merchant_id

from services.member.adapters.commission_store import (BOOK_FIELDS, PAYEE_FIELDS, _book, _opened, _record, account_id,
                                                      credited_update, movement_update, record_doc, release_update)
from services.member.domain.commissions import (BUCKETS, FROZEN, LEVEL_1, PENDING, SETTLED, CommissionBook,
                                                CommissionLine, OrderCommissions, apply, bucket_of, hold_movement,
                                                merged, paid_movement, record_movement, release, return_movement)

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)


def _read(coll, merchant: str, who: str) -> CommissionBook:
    return _book(merchant, who, coll.find_one({"_id": account_id(merchant, who), "merchant_id": merchant},
                                              BOOK_FIELDS))


def _same(a: CommissionBook, b: CommissionBook) -> bool:
    return (a.available, a.debt, a.withdrawing, a.withdrawn, a.moving, a.cleared, a.days) == \
        (b.available, b.debt, b.withdrawing, b.withdrawn, b.moving, b.cleared, b.days)


def _record_of(merchant: str, who: str, stage: str, voided: int, order_id: str):
    line = CommissionLine("ln_1", LEVEL_1, who, 1000, 10_000, 1_000, voided)
    event = OrderCommissions(merchant, order_id, new_id("mem"), stage, (line,), NOW)
    return merged(None, event, line)


class Ledger:
    """The account in `coll` and its records beside it, moved by the store's shapes."""

    def __init__(self, coll, merchant: str, who: str):
        self.coll, self.merchant, self.who = coll, merchant, who
        self.records = coll.database[f"{coll.name}_records"]
        self.book = CommissionBook(merchant, who)
        coll.insert_one(_opened(merchant, who))

    def record(self, stage: str, voided: int, order_id: str):
        """The record as stored (inserted, or moved to `voided`), read back with its credited value."""
        r = _record_of(self.merchant, self.who, stage, voided, order_id)
        if self.records.find_one({"_id": r.id}) is None:
            self.records.insert_one(record_doc(r))
            return r
        else:
            self.records.update_one({"_id": r.id}, {"$set": {"voided": voided, "stage": stage}})
        return _record(self.records.find_one({"_id": r.id, "merchant_id": self.merchant}))

    def step(self, movement, checked: bool = True) -> None:
        """The movement's update (once), its record's credited value (once), its release (once);
        `checked`: each write again, and the book read back."""
        coll, merchant = self.coll, self.merchant
        query, update = movement_update(merchant, movement, {"kind": movement.kind, "created_ms": 1}, 1)
        assert coll.update_one(query, update).modified_count == 1
        apply(self.book, movement)
        if checked:
            assert coll.update_one(query, update).modified_count == 0  # its subject is under way
            assert _same(_read(coll, merchant, self.who), self.book)
        if movement.record_id:
            q, u = credited_update(merchant, movement.record_id, movement.credited_was, movement.credited_now or 0)
            assert self.records.update_one(q, u).modified_count == 1
            if checked:
                assert self.records.update_one(q, u).modified_count == 0
        if checked:
            late = release_update(merchant, self.who, movement.subject, "an earlier cause of the subject")
            assert coll.update_one(*late).modified_count == 0
        q, u = release_update(merchant, self.who, movement.subject, movement.cause)
        assert coll.update_one(q, u).modified_count == 1
        release(self.book, movement.subject, movement.cause)
        if checked:
            assert coll.update_one(q, u).modified_count == 0
            # Decided before the release, it loses: the subject's bucket counter moved.
            assert coll.update_one(query, update).modified_count == 0
            assert _same(_read(coll, merchant, self.who), self.book)


def test_every_balance_movement_is_one_guarded_update_that_applies_once(coll):
    merchant, who = new_merchant_id(), new_id("mem")
    ledger = Ledger(coll, merchant, who)
    book = ledger.book
    order = new_id("ord")
    settled = ledger.record(SETTLED, 0, order)
    assert settled.credited is None
    stale = record_movement(book, settled)
    ledger.step(record_movement(book, settled))
    assert coll.update_one(*movement_update(merchant, stale, {}, 1)).modified_count == 0
    assert ledger.record(SETTLED, 0, order).credited == 1_000 and record_movement(
        book, ledger.record(SETTLED, 0, order)) is None  # a replay finds nothing owed
    day = "2026-03-01"
    coll.update_one({"_id": account_id(merchant, who)}, {"$set": {"days": {"2026-02-27": 900}}})
    book.days = {"2026-02-27": 900}
    first = hold_movement(book, "wdr_a", 600, day, 1_000)  # the day has no counter yet: $exists false
    ledger.step(first)
    assert book.days == {day: 600}  # the day's first withdrawal replaced the past days
    racing = hold_movement(CommissionBook(merchant, who, available=1_000, cleared=dict(book.cleared)), "wdr_b", 100,
                           day, 1_000)
    q, u = movement_update(merchant, racing, {}, 1)
    assert coll.update_one(q, u).modified_count == 0  # decided as the day's first: the counter exists now
    over = hold_movement(book, "wdr_c", 401, day, 1_000)
    assert coll.update_one(*movement_update(merchant, over, {}, 1)).modified_count == 0  # past the limit
    ledger.step(hold_movement(book, "wdr_d", 300, day, 1_000))  # within: $lte
    ledger.step(paid_movement(book, "wdr_a", 600))
    # A full void after most was withdrawn: available to 0 exactly, the rest is debt.
    voided = ledger.record(SETTLED, 1_000, order)
    clawback = record_movement(book, voided)
    assert clawback.exact_available == 100 and clawback.debt == 900
    ledger.step(clawback)
    # The held withdrawal comes back: it pays the debt first (exact debt).
    ledger.step(return_movement(book, "wdr_d", 300))
    assert (book.available, book.debt, book.withdrawing, book.withdrawn) == (0, 600, 0, 600)
    ledger.step(record_movement(book, ledger.record(SETTLED, 0, new_id("ord"))))
    assert (book.available, book.debt) == (400, 0)
    ledger.records.drop()


def test_the_account_stays_bounded_after_200_records_and_50_withdrawals(coll):
    merchant, who = new_merchant_id(), new_id("mem")
    ledger = Ledger(coll, merchant, who)
    for _ in range(200):
        ledger.step(record_movement(ledger.book, ledger.record(SETTLED, 0, new_id("ord"))), checked=False)
    for i in range(50):
        wid = new_id("wdr")
        ledger.step(hold_movement(ledger.book, wid, 100, f"2026-03-{1 + i // 10:02d}", 10_000), checked=False)
        ledger.step((paid_movement if i % 2 else return_movement)(ledger.book, wid, 100), checked=False)
    assert _same(_read(coll, merchant, who), ledger.book)
    doc = coll.find_one({"_id": account_id(merchant, who)})
    assert doc["available"] == 200 * 1_000 - 25 * 100 and doc["withdrawn"] == 25 * 100
    assert doc["pending"] == {} and doc["pending_count"] == 0
    assert doc["days"] == {"2026-03-05": 1_000}
    assert len(doc["cleared"]) <= BUCKETS and sum(doc["cleared"].values()) == 200 + 100
    assert set(doc) <= {"_id", "merchant_id", "beneficiary_id", "available", "withdrawing", "withdrawn", "debt",
                        "days", "pending", "pending_count", "cleared", "updated_ms"}
    ledger.records.drop()


def test_a_record_moves_forward_only_from_what_was_read(coll):
    merchant, who = new_merchant_id(), new_id("mem")
    order = new_id("ord")
    pending = _record_of(merchant, who, PENDING, 0, order)
    coll.insert_one(record_doc(pending))
    frozen = _record_of(merchant, who, FROZEN, 100, order)
    sets = {k: record_doc(frozen)[k] for k in ("stage", "state", "voided", "net", "updated_ms")}
    guard = {"_id": pending.id, "merchant_id": merchant, "stage": pending.stage, "voided": pending.voided}
    assert coll.update_one(guard, {"$set": sets}).modified_count == 1
    assert coll.update_one(guard, {"$set": sets}).modified_count == 0  # read before the move: lost
    docs = list(coll.find({"merchant_id": merchant, "beneficiary_id": who, "state": FROZEN}).sort("_id", DESCENDING))
    assert [d["net"] for d in docs] == [900]
    assert [d["_id"] for d in coll.find({"merchant_id": merchant, "order_id": order})] == [pending.id]
    totals = list(coll.find({"merchant_id": merchant}, {"state": 1, "net": 1, "voided": 1}))
    assert [(d["state"], d["net"], d["voided"]) for d in totals] == [(FROZEN, 900, 100)]


def test_pages_by_key_and_by_state_and_the_claim_of_the_job(coll):
    merchant, member = new_merchant_id(), new_id("mem")
    ids = sorted(new_id("wdr") for _ in range(4))
    states = ["REQUESTED", "HOLDING", "PAID", "PAYING"]
    for i, (wid, state) in enumerate(zip(ids, states)):
        coll.insert_one({"_id": wid, "merchant_id": merchant, "member_id": member, "state": state,
                         "work": int(state in ("HOLDING", "PAYING")), "lease_ms": 100 * i})
    shown = {"merchant_id": merchant, "state": {"$in": ["REQUESTED", "PAYING", "PAID"]}, "member_id": member,
             "_id": {"$lt": ids[3]}}
    assert [d["_id"] for d in coll.find(shown).sort("_id", DESCENDING).limit(5)] == [ids[2], ids[0]]
    claimed = coll.find_one_and_update({"work": 1, "lease_ms": {"$lt": 250}}, {"$set": {"lease_ms": 10_000}},
                                       return_document=ReturnDocument.AFTER)
    assert claimed["_id"] == ids[1] and claimed["lease_ms"] == 10_000
    assert coll.find_one_and_update({"work": 1, "lease_ms": {"$lt": 250}}, {"$set": {"lease_ms": 1}}) is None
    # Payees: accounts by id after a position, ascending, maps left out.
    coll.delete_many({})
    who = sorted(new_id("mem") for _ in range(3))
    for w in who:
        coll.insert_one({**_opened(merchant, w), "available": 5})
    page = list(coll.find({"merchant_id": merchant, "_id": {"$gt": account_id(merchant, who[0])}},
                          PAYEE_FIELDS).sort("_id", ASCENDING).limit(5))
    assert [d["beneficiary_id"] for d in page] == who[1:] and "pending" not in page[0]
    assert sum(d["available"] for d in coll.find({"merchant_id": merchant}, {"available": 1})) == 15


def test_the_stored_value_liability_reads_every_account_of_the_merchant(coll):
    merchant = new_merchant_id()
    coll.insert_many([{"_id": f"{merchant}:{i}", "merchant_id": merchant, "principal": 100 * i, "bonus": i,
                       "held_principal": 10, "held_bonus": 1} for i in range(1, 4)]
                     + [{"_id": "other:1", "merchant_id": new_merchant_id(), "principal": 999, "bonus": 9}])
    fields = {"principal": 1, "bonus": 1, "held_principal": 1, "held_bonus": 1}
    docs = list(coll.find({"merchant_id": merchant}, fields))
    assert sum(d["principal"] + d["held_principal"] for d in docs) == 630
    assert sum(d["bonus"] + d["held_bonus"] for d in docs) == 9


def test_the_repair_finds_movements_under_way_and_releases_each_once(coll):
    merchant, who = new_merchant_id(), new_id("mem")
    subject = f"{new_id('ord')}:{new_id('oln')}:LEVEL_1"
    moving = {"cause": f"void:{subject}:300", "entry": {"kind": "CLAWBACK"}, "record_id": subject,
              "withdrawal_id": "", "was": 1_000, "now": 700, "created_ms": 5}
    coll.insert_one({**_opened(merchant, who), "pending": {subject: moving}, "pending_count": 1})
    owing = list(coll.find({"pending_count": {"$gt": 0}}, {"merchant_id": 1, "beneficiary_id": 1, "pending": 1})
                 .limit(100))
    assert [(d["beneficiary_id"], list(d["pending"])) for d in owing] == [(who, [subject])]
    one = {"_id": account_id(merchant, who), "merchant_id": merchant}
    assert coll.find_one(one, {"pending": 1})["pending"][subject]["now"] == 700
    # The record's credited value, once: from what the movement read.
    coll.insert_one({"_id": subject, "merchant_id": merchant, "credited": 1_000})
    q, u = credited_update(merchant, subject, 1_000, 700)
    assert coll.update_one(q, u).modified_count == 1 and coll.update_one(q, u).modified_count == 0
    q, u = credited_update(merchant, new_id("ord"), None, 5)
    assert coll.update_one(q, u).modified_count == 0
    q, u = release_update(merchant, who, subject, moving["cause"])
    assert coll.update_one(q, u).modified_count == 1
    assert coll.update_one(q, u).modified_count == 0
    assert coll.find_one({"pending_count": {"$gt": 0}}) is None
    assert _read(coll, merchant, who).cleared == {bucket_of(subject): 1}
    # A withdrawal's own state decides whether its mark may go.
    wid = new_id("wdr")
    coll.insert_one({"_id": wid, "merchant_id": merchant, "state": "REQUESTED", "booked": 0})
    assert coll.find_one({"_id": wid, "merchant_id": merchant}, {"state": 1, "booked": 1})["state"] == "REQUESTED"
