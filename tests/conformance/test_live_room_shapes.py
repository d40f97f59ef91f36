"""The query and update shapes of the live room's storage
(services/content/adapters/live_viewer_store.py and the catalog's room announcements in
services/catalog/adapters/live_room_store.py): unique viewers by an unordered batch insert
whose duplicates are counted out, leases by upsert, the figures by one upsert of `$inc`,
`$set` and `$max` (no `$setOnInsert`: the embedded server ignores it), the announcement's compare-and-set with its outbox, a
purchase told once, and a flash sale's room marks."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from siyu_kit.events.outbox import OUTBOX, PENDING
from siyu_kit.ids import new_id
from tests.support import new_merchant_id

from services.content.adapters import live_viewer_store as store
from services.content.domain.live_room import Figures, Purchase


@pytest.fixture
def cols(db, request):
    tag = f"{request.node.name[:30]}_{new_id('c').lower()[-8:]}"
    made = {name: db[f"{name}_{tag}"] for name in ("viewers", "leases", "stats", "purchases", "sales")}
    yield made
    for c in made.values():
        c.drop()


def test_a_member_counts_once_however_often_reported(cols):
    m, session = new_merchant_id(), new_id("liv")
    a, b, c = new_id("mem"), new_id("mem"), new_id("mem")
    assert store.add_viewers(cols["viewers"], m, session, [a, b]) == 2
    assert store.add_viewers(cols["viewers"], m, session, [b, c, a]) == 1  # only c is new
    assert store.add_viewers(cols["viewers"], m, session, [a]) == 0
    assert store.add_viewers(cols["viewers"], m, new_id("liv"), [a]) == 1  # another session
    assert store.add_viewers(cols["viewers"], m, session, []) == 0
    assert cols["viewers"].count_documents({"merchant_id": m, "live_session_id": session}) == 3


def test_a_members_watched_sessions_are_listed_and_forgotten_by_merchant_and_member(cols):
    m, other = new_merchant_id(), new_merchant_id()
    first, second = sorted([new_id("liv"), new_id("liv")])
    store.add_viewers(cols["viewers"], m, first, ["mem_a", "mem_b"])
    store.add_viewers(cols["viewers"], m, second, ["mem_a"])
    store.add_viewers(cols["viewers"], other, first, ["mem_a"])
    assert store.sessions_watched(cols["viewers"], m, "mem_a") == [first, second]
    store.forget_viewer(cols["viewers"], m, "mem_a")
    assert store.sessions_watched(cols["viewers"], m, "mem_a") == []
    assert store.sessions_watched(cols["viewers"], m, "mem_b") == [first]
    assert store.sessions_watched(cols["viewers"], other, "mem_a") == [first]


def test_leases_are_replaced_per_gateway_and_read_per_session(cols):
    m, session = new_merchant_id(), new_id("liv")
    store.renew_lease(cols["leases"], m, session, "g1", 5, 1000)
    store.renew_lease(cols["leases"], m, session, "g2", 7, 2000)
    store.renew_lease(cols["leases"], m, session, "g1", 3, 3000)
    store.renew_lease(cols["leases"], new_merchant_id(), session, "g3", 100, 3000)
    found = sorted((d["gateway_id"], d["concurrent"], d["expires_ms"])
                   for d in store.leases(cols["leases"], m, session))
    assert found == [("g1", 3, 3000), ("g2", 7, 2000)]


def test_the_figures_add_unique_set_concurrent_and_keep_the_peak(cols):
    m, session = new_merchant_id(), new_id("liv")
    first = store.record(cols["stats"], m, session, 2, 5, 100)
    assert (first["unique"], first["concurrent"], first["peak"]) == (2, 5, 5)
    assert "announced_ms" not in first
    second = store.record(cols["stats"], m, session, 1, 3, 200)
    assert (second["unique"], second["concurrent"], second["peak"]) == (3, 3, 5)
    third = store.record(cols["stats"], m, session, 0, 9, 300)
    assert (third["unique"], third["concurrent"], third["peak"]) == (3, 9, 9)
    found = store.figures_of(cols["stats"], m, [session, new_id("liv")])
    assert [(d["live_session_id"], d["unique"], d["concurrent"], d["peak"]) for d in found] == [(session, 3, 9, 9)]
    assert store.figures_of(cols["stats"], new_merchant_id(), [session]) == []


def test_an_announcement_is_made_once_per_last_announcement_with_its_event(cols):
    m, session = new_merchant_id(), new_id("liv")
    store.record(cols["stats"], m, session, 1, 1, 100)
    assert store.announce(cols["stats"], m, session, Figures(1, 1, 1), 0, 1500)
    assert not store.announce(cols["stats"], m, session, Figures(1, 1, 1), 0, 1600)  # another replica won
    doc = cols["stats"].find_one({"_id": store.stats_id(m, session)})
    assert (doc["ann_unique"], doc["ann_concurrent"], doc["ann_peak"], doc["announced_ms"]) == (1, 1, 1, 1500)
    assert doc[PENDING] == 1 and len(doc[OUTBOX]) == 1
    event = next(iter(doc[OUTBOX].values()))
    assert event["subject"] == f"siyu.live.room.{session}"
    # the next record keeps what was announced
    again = store.record(cols["stats"], m, session, 0, 2, 2000)
    assert (again["ann_concurrent"], again["announced_ms"], again["concurrent"]) == (1, 1500, 2)
    assert OUTBOX not in again


def test_a_purchase_is_told_once_per_order(cols):
    m, order = new_merchant_id(), new_id("ord")
    purchase = Purchase(m, order, new_id("liv"), "张三丰", new_id("prd"), "保温杯", 2, 1000)
    assert store.add_purchase(cols["purchases"], purchase)
    assert not store.add_purchase(cols["purchases"], purchase)
    doc = cols["purchases"].find_one({"merchant_id": m})
    assert doc["order_id"] == order and doc[PENDING] == 1 and len(doc[OUTBOX]) == 1


# ---- the catalog's room announcements (services/catalog/adapters/live_room_store.py)

def _sale(m: str, session: str, starts: datetime, ends: datetime, **extra) -> dict:
    return {"_id": new_id("fls"), "merchant_id": m, "live_session_id": session, "product_id": new_id("prd"),
            "sku_id": new_id("sku"), "price": 990, "currency": "CNY", "units": 10, "available": 10,
            "starts_at": starts, "ends_at": ends, "pooled": 1, "holds": {}, "tending": 1, **extra}


def test_running_room_sales_are_pooled_bound_to_a_session_and_inside_their_window(cols):
    from services.catalog.adapters import live_room_store as rooms
    now = datetime.now(timezone.utc).replace(microsecond=0)
    m, session, hour = new_merchant_id(), new_id("liv"), timedelta(hours=1)
    running = _sale(m, session, now - hour, now + hour)
    cols["sales"].insert_many([
        running,
        _sale(m, "", now - hour, now + hour),  # no session
        _sale(m, session, now + hour, now + 2 * hour),  # not started
        _sale(m, session, now - 2 * hour, now - hour),  # ended
        _sale(m, session, now - hour, now + hour, pooled=0),  # not pooled
    ])
    found = rooms.running(cols["sales"], now, 10)
    assert [d["_id"] for d in found] == [running["_id"]]
    assert "holds" not in found[0] and "room_ms" not in found[0]


def test_a_sale_is_announced_started_once_then_its_units_by_compare_and_set(cols):
    from services.catalog.adapters import live_room_store as rooms
    now = datetime.now(timezone.utc).replace(microsecond=0)
    m, session, hour = new_merchant_id(), new_id("liv"), timedelta(hours=1)
    cols["sales"].insert_one(_sale(m, session, now - hour, now + hour))
    sale = rooms.room_sale(rooms.running(cols["sales"], now, 10)[0])
    assert sale.announced_ms is None
    assert rooms.announce_started(cols["sales"], sale, 1000, now)
    assert not rooms.announce_started(cols["sales"], sale, 1001, now)  # another replica: once
    cols["sales"].update_one({"_id": sale.id}, {"$inc": {"available": -3}})
    sale = rooms.room_sale(rooms.running(cols["sales"], now, 10)[0])
    assert (sale.announced_ms, sale.announced_units, sale.available) == (1000, 10, 7)
    assert rooms.announce_stock(cols["sales"], sale, 2000, now)
    assert not rooms.announce_stock(cols["sales"], sale, 2001, now)  # what it read is no longer so
    doc = cols["sales"].find_one({"_id": sale.id})
    assert (doc["room_ms"], doc["room_units"], doc[PENDING]) == (2000, 7, 1)
    assert sorted(e["subject"] for e in doc[OUTBOX].values()) == [f"siyu.live.room.{session}"] * 2
