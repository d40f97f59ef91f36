"""The query and update shapes of the points mall: coupon items
(services/member/adapters/points_mall_store.py) — the unique key on insert, the unit taken
by `$inc` guarded by `left >= 1` and state, given back, the versioned save that also
`$inc`s units, the pages newest first with an open window as epoch-ms ranges; the member
counters (insert at 0, then `$inc` guarded by `used < limit`, and back); redemptions
(versioned state moves, the give-back mark cleared once, the finishing job's two flat
claims with `$in` and epoch-ms ranges, a member's page); and product items
(services/order/adapters/points_mall_store.py) — save and page."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from services.member.adapters import points_mall_store as member_store
from services.member.domain.points_mall import CouponItem, ItemState, Redemption, RedemptionState
from services.order.adapters import points_mall_store as order_store
from services.order.domain.points_mall import ItemState as ProductState, PointsMallItem
from siyu_kit.ids import new_id
from tests.support import new_merchant_id

AT = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def coupon_item(merchant: str, key: str = "", left: int = 2, starts: datetime = AT, hours: int = 1) -> CouponItem:
    return CouponItem(new_id("pmc"), merchant, 1, new_id("cpt"), "券", 100, left, left, 1, starts,
                      starts + timedelta(hours=hours), ItemState.ACTIVE, AT, key or new_id("k"))


def redemption(merchant: str, member: str, created: datetime = AT, key: str = "") -> Redemption:
    return Redemption(new_id("pmr"), merchant, member, new_id("pmc"), new_id("cpt"), 100, RedemptionState.TAKEN,
                      created, key or new_id("k"))


def test_coupon_items_unique_per_key_units_taken_only_while_left_and_active(coll):
    coll.create_index([("key", ASCENDING)], unique=True)
    merchant = new_merchant_id()
    item = coupon_item(merchant, key="same")
    coll.insert_one(member_store.item_doc(item))
    try:
        coll.insert_one(member_store.item_doc(coupon_item(merchant, key="same")))
        raise AssertionError("a second item of the same key was stored")
    except DuplicateKeyError:
        pass
    coll.insert_one(member_store.item_doc(coupon_item(new_merchant_id(), key="same")))
    take = member_store.take_unit_update(merchant, item.id)
    assert [coll.update_one(*take).modified_count for _ in range(3)] == [1, 1, 0]
    assert coll.update_one(*member_store.give_back_unit_update(merchant, item.id)).modified_count == 1
    assert coll.update_one(*member_store.take_unit_update(new_merchant_id(), item.id)).modified_count == 0
    back = member_store.item_of(coll.find_one({"_id": item.id}))
    assert (back.left, back.starts_at, back.idempotency_key) == (1, item.starts_at, "same")
    # Staff save on the version read: units added join what is left; a stale save matches nothing.
    back.state = ItemState.ENDED
    assert coll.update_one(*member_store.item_save_update(back, 3)).modified_count == 1
    assert coll.update_one(*member_store.item_save_update(back, 3)).modified_count == 0
    ended = member_store.item_of(coll.find_one({"_id": item.id}))
    assert (ended.left, ended.version, ended.state) == (4, 2, ItemState.ENDED)
    assert coll.update_one(*member_store.take_unit_update(merchant, item.id)).modified_count == 0, "ended"


def test_item_pages_newest_first_and_only_open_windows_for_members(coll):
    coll.create_index([("merchant_id", ASCENDING), ("state", ASCENDING), ("ends_ms", ASCENDING)])
    merchant = new_merchant_id()
    early = coupon_item(merchant, starts=AT - timedelta(hours=3))  # its 1 h window ended before AT
    running = coupon_item(merchant, starts=AT - timedelta(minutes=1))
    later = coupon_item(merchant, starts=AT + timedelta(hours=1))
    for i in (early, running, later):
        coll.insert_one(member_store.item_doc(i))
    coll.insert_one(member_store.item_doc(coupon_item(new_merchant_id(), starts=AT - timedelta(minutes=1))))
    ms = int(AT.timestamp() * 1000)
    everything = [d["_id"] for d in coll.find(member_store.page_query(merchant, "", None)).sort("_id", DESCENDING)]
    assert everything == [later.id, running.id, early.id]
    assert [d["_id"] for d in coll.find(member_store.page_query(merchant, later.id, None))
            .sort("_id", DESCENDING).limit(1)] == [running.id]
    assert [d["_id"] for d in coll.find(member_store.page_query(merchant, "", ms))] == [running.id]


def test_member_counters_count_up_to_the_limit_and_back(coll):
    merchant, item, member = new_merchant_id(), new_id("pmc"), new_id("mem")
    coll.insert_one({"_id": member_store.counter_id(item, member), "merchant_id": merchant, "used": 0})
    try:
        coll.insert_one({"_id": member_store.counter_id(item, member), "merchant_id": merchant, "used": 0})
        raise AssertionError("a second counter was stored")
    except DuplicateKeyError:
        pass
    take = member_store.take_place_update(merchant, item, member, 2)
    assert [coll.update_one(*take).modified_count for _ in range(3)] == [1, 1, 0]
    back = member_store.give_back_place_update(merchant, item, member)
    assert [coll.update_one(*back).modified_count for _ in range(3)] == [1, 1, 0], "never below 0"


def test_redemptions_move_by_version_clear_their_mark_once_and_are_claimed_by_the_job(coll):
    coll.create_index([("key", ASCENDING)], unique=True)
    coll.create_index([("state", ASCENDING), ("created_ms", ASCENDING), ("lease_ms", ASCENDING)])
    merchant, member = new_merchant_id(), new_id("mem")
    old, fresh = redemption(merchant, member, AT - timedelta(minutes=5)), redemption(merchant, member, AT)
    for r in (old, fresh):
        coll.insert_one(member_store.redemption_doc(r))
    try:
        coll.insert_one(member_store.redemption_doc(redemption(merchant, member, key=old.idempotency_key)))
        raise AssertionError("a second redemption of the same key was stored")
    except DuplicateKeyError:
        pass
    read = member_store.redemption_of(coll.find_one({"key": f"{merchant}:{member}:{old.idempotency_key}"}))
    assert (read.id, read.created_at, read.state) == (old.id, old.created_at, RedemptionState.TAKEN)
    # The job claims the old one (not the fresh one), and not again while leased.
    ms = int(AT.timestamp() * 1000)
    lease = {"$set": {"lease_ms": ms + 60_000}}
    claimed = coll.find_one_and_update(member_store.unfinished_query(ms - 30_000, ms), lease,
                                       return_document=ReturnDocument.AFTER)
    assert claimed["_id"] == old.id
    assert coll.find_one_and_update(member_store.unfinished_query(ms - 30_000, ms), lease) is None
    # A state move on the version read; the stale one matches nothing.
    read.undone("POINTS_INSUFFICIENT")
    assert coll.update_one(*member_store.redemption_save_update(read, True)).modified_count == 1
    assert coll.update_one(*member_store.redemption_save_update(read, True)).modified_count == 0
    moved = member_store.redemption_of(coll.find_one({"_id": old.id}))
    assert (moved.state, moved.version, moved.failure_reason) == (RedemptionState.UNDONE, 2, "POINTS_INSUFFICIENT")
    later = ms + 120_000
    assert coll.find_one(member_store.unfinished_query(later, later)) is not None  # only the fresh one
    assert coll.find_one(member_store.owing_query(later, later))["_id"] == old.id
    mark = member_store.gave_back_update(merchant, old.id)
    assert [coll.update_one(*mark).modified_count for _ in range(2)] == [1, 0]
    assert coll.find_one(member_store.owing_query(later, later)) is None
    page = [d["_id"] for d in coll.find(member_store.member_page_query(merchant, member, "")).sort("_id", DESCENDING)]
    assert page == [fresh.id, old.id]
    assert [d["_id"] for d in coll.find(member_store.member_page_query(merchant, member, fresh.id))] == [old.id]
    assert coll.find_one(member_store.member_page_query(merchant, new_id("mem"), "")) is None


def test_product_items_save_by_version_and_page_open_windows(coll):
    coll.create_index([("key", ASCENDING)], unique=True)
    merchant = new_merchant_id()

    def product(starts: datetime) -> PointsMallItem:
        return PointsMallItem(new_id("pmi"), merchant, 1, new_id("fls"), new_id("sku"), new_id("prd"), "t", 100, 0,
                              1000, 5, 1, starts, starts + timedelta(hours=1), ProductState.ACTIVE, AT,
                              new_id("k"))
    running, later = product(AT - timedelta(minutes=1)), product(AT + timedelta(hours=2))
    for p in (running, later):
        coll.insert_one(order_store.item_doc(p))
    read = order_store.item_of(coll.find_one({"_id": running.id}))
    assert (read.starts_at, read.cash_price, read.pool_id) == (running.starts_at, 0, running.pool_id)
    read.change("新", 150)
    assert coll.update_one(*order_store.save_update(read)).modified_count == 1
    assert coll.update_one(*order_store.save_update(read)).modified_count == 0
    again = order_store.item_of(coll.find_one({"_id": running.id}))
    assert (again.title, again.points_price, again.version) == ("新", 150, 2)
    ms = int(AT.timestamp() * 1000)
    assert [d["_id"] for d in coll.find(order_store.page_query(merchant, "", ms))] == [running.id]
    assert [d["_id"] for d in coll.find(order_store.page_query(merchant, "", None))
            .sort("_id", DESCENDING)] == [later.id, running.id]
