"""The query and update shapes of stored value (services/member/adapters/stored_value_store.py):
each balance movement's one conditional update as the store builds it, the lease of the
recharge-refund job, the ledger's unique cause and pages, and the package lists."""
from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from siyu_kit.ids import new_id
from tests.support import new_merchant_id

from services.member.adapters.stored_value_store import _book, _opened, account_id, movement_update
from services.member.domain.stored_value import BalanceBook

ORDER, OTHER = new_id("ord"), new_id("ord")


def _apply(coll, merchant: str, book: BalanceBook, movement, owed: dict | None = None) -> int:
    query, update = movement_update(merchant, movement, owed, 1_700_000_000_000)
    return coll.update_one(query, update).modified_count


def _read(coll, merchant: str, member: str) -> BalanceBook:
    return _book(coll.find_one({"_id": account_id(merchant, member), "merchant_id": merchant}))


def _same(a: BalanceBook, b: BalanceBook) -> bool:
    return (a.principal, a.bonus, a.held_principal, a.held_bonus, a.holds, a.orders, a.recharges, a.done) == \
        (b.principal, b.bonus, b.held_principal, b.held_bonus, b.holds, b.orders, b.recharges, b.done)


def test_every_movement_is_one_guarded_update_that_applies_once(coll):
    """Credit, hold, capture, release (and its marker), refunds and a recharge refund: each
    update leaves the document as the domain's account says, and a replay or a movement
    decided on a stale read changes nothing."""
    merchant, member = new_merchant_id(), new_id("mem")
    coll.insert_one(_opened(merchant, member))
    book = BalanceBook(merchant, member)
    rch = new_id("rch")

    def step(movement, owed=None) -> None:
        assert _apply(coll, merchant, book, movement, owed) == 1
        book.apply(movement)
        assert _apply(coll, merchant, book, movement, owed) == 0  # its cause is applied
        assert _same(_read(coll, merchant, member), book)

    step(book.credit(new_id("ord"), rch, "rcp_1", 10_000, 2_000, 5), owed={"kind": "RECHARGE", "created_ms": 5})
    stale = book.hold(OTHER, 11_000)  # decided now, written after another hold took most
    step(book.hold(ORDER, 6_000))
    assert _apply(coll, merchant, book, stale) == 0  # principal/bonus no longer hold it
    step(book.capture(ORDER))
    first, second = book.refund(ORDER, new_id("rfd"), 3_000), book.refund(ORDER, new_id("rfd"), 3_000)
    step(first)
    assert _apply(coll, merchant, book, second) == 0  # the order's refunds moved since it was decided
    step(book.refund(ORDER, new_id("rfd"), 3_000))
    marker = book.release(OTHER)
    late_hold = book.hold(OTHER, 1)
    step(marker)
    assert _apply(coll, merchant, book, late_hold) == 0  # released first: a late hold is refused
    step(book.hold(new_id("ord"), 1))
    held = next(iter(book.holds))
    step(book.release(held))
    step(book.refund_recharge(rch, "k", "asked", 9))
    doc = coll.find_one({"_id": account_id(merchant, member)})
    assert doc["refunding_count"] == 1 and doc["pending_count"] == 1
    step(book.recharge_refunded(rch, "rfd_1"))
    doc = coll.find_one({"_id": account_id(merchant, member)})
    assert doc["refunding_count"] == 0
    assert book.recharges[rch].state == "REFUNDED" and (book.principal, book.bonus) == (0, 0)


def test_a_recharge_refund_needs_its_credit_and_the_recharge_as_read(coll):
    merchant, member = new_merchant_id(), new_id("mem")
    coll.insert_one(_opened(merchant, member))
    book = BalanceBook(merchant, member)
    rch = new_id("rch")
    credit = book.credit(new_id("ord"), rch, "rcp_1", 100, 0, 1)
    book.apply(credit)  # decided as if credited, but the credit was never written
    assert _apply(coll, merchant, book, book.refund_recharge(rch, "k", "r", 2)) == 0
    assert _read(coll, merchant, member).recharges == {}


def test_the_refund_job_leases_accounts_with_refunds_under_way(coll):
    merchant = new_merchant_id()
    coll.insert_many([{**_opened(merchant, m), "refunding_count": n} for m, n in (("mem_a", 1), ("mem_b", 0))])

    def claim(now_ms: int):
        return coll.find_one_and_update({"refunding_count": {"$gt": 0}, "refund_lease_ms": {"$lt": now_ms}},
                                        {"$set": {"refund_lease_ms": now_ms + 30_000}},
                                        projection={"merchant_id": 1, "member_id": 1},
                                        return_document=ReturnDocument.AFTER)

    got = claim(1_000)
    assert (got["merchant_id"], got["member_id"]) == (merchant, "mem_a")
    assert claim(2_000) is None  # leased to the first caller
    assert claim(31_001)["member_id"] == "mem_a"  # the lease ran out


def test_ledger_entries_are_unique_per_cause_and_page_newest_first(coll):
    coll.create_index([("merchant_id", ASCENDING), ("cause", ASCENDING)], unique=True)
    merchant = new_merchant_id()
    ids = sorted(new_id("bal") for _ in range(5))
    for i, entry_id in enumerate(ids):
        coll.insert_one({"_id": entry_id, "merchant_id": merchant, "member_id": "mem_1", "cause": f"SPEND_{i}"})
    try:
        coll.insert_one({"_id": new_id("bal"), "merchant_id": merchant, "member_id": "mem_1", "cause": "SPEND_0"})
        raise AssertionError("a cause entered the ledger twice")
    except DuplicateKeyError:
        pass
    page = list(coll.find({"merchant_id": merchant, "member_id": "mem_1", "_id": {"$lt": ids[3]}})
                .sort("_id", DESCENDING).limit(2))
    assert [d["_id"] for d in page] == [ids[2], ids[1]]


def test_pending_entries_are_found_by_count_and_cleared_once(coll):
    merchant = new_merchant_id()
    coll.insert_one({**_opened(merchant, "mem_1"), "pending": {"RECHARGE_ord_1": {"created_ms": 1}},
                     "pending_count": 1})
    assert [d["member_id"] for d in coll.find({"pending_count": {"$gt": 0}}, {"member_id": 1, "pending": 1})] == \
        ["mem_1"]
    clear = ({"_id": account_id(merchant, "mem_1"), "merchant_id": merchant, "pending.RECHARGE_ord_1": {"$exists": True}},
             {"$unset": {"pending.RECHARGE_ord_1": ""}, "$inc": {"pending_count": -1}})
    assert coll.update_one(*clear).modified_count == 1
    assert coll.update_one(*clear).modified_count == 0
    assert coll.find_one({"pending_count": {"$gt": 0}}) is None


def test_packages_by_key_newest_first_and_active_cheapest_first(coll):
    coll.create_index([("merchant_id", ASCENDING), ("idempotency_key", ASCENDING)], unique=True)
    coll.create_index([("merchant_id", ASCENDING), ("state", ASCENDING), ("price", ASCENDING)])
    merchant = new_merchant_id()
    rows = [(new_id("rcp"), price, state) for price, state in
            ((50_000, "ACTIVE"), (10_000, "ACTIVE"), (20_000, "INACTIVE"), (10_000, "ACTIVE"))]
    for i, (package_id, price, state) in enumerate(rows):
        coll.insert_one({"_id": package_id, "merchant_id": merchant, "price": price, "state": state,
                         "idempotency_key": f"k{i}", "version": 1})
    try:
        coll.insert_one({"_id": new_id("rcp"), "merchant_id": merchant, "idempotency_key": "k0"})
        raise AssertionError("a key was used twice")
    except DuplicateKeyError:
        pass
    assert coll.find_one({"merchant_id": merchant, "idempotency_key": "k2"})["_id"] == rows[2][0]
    active = list(coll.find({"merchant_id": merchant, "state": "ACTIVE"}).sort([("price", ASCENDING),
                                                                                ("_id", ASCENDING)]).limit(50))
    assert [d["_id"] for d in active] == [rows[1][0], rows[3][0], rows[0][0]]
    newest = list(coll.find({"merchant_id": merchant, "_id": {"$lt": rows[3][0]}}).sort("_id", DESCENDING).limit(2))
    assert [d["_id"] for d in newest] == [rows[2][0], rows[1][0]]
    saved = coll.update_one({"_id": rows[0][0], "merchant_id": merchant, "version": 1},
                            {"$set": {"state": "INACTIVE"}, "$inc": {"version": 1}})
    assert saved.modified_count == 1
    assert coll.update_one({"_id": rows[0][0], "merchant_id": merchant, "version": 1},
                           {"$set": {"state": "ACTIVE"}, "$inc": {"version": 1}}).modified_count == 0
