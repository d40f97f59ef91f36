"""The guarded changes of a SKU's stock, and the events a reservation publishes."""
from __future__ import annotations

from datetime import datetime, timezone

from siyu.catalog.v1 import catalog_pb2, events_pb2

from siyu_kit.events.outbox import decode

from services.catalog.adapters import messages
from services.catalog.adapters.repositories import _change
from services.catalog.domain import stock as rules
from services.catalog.domain.reservations import Reservation
from services.catalog.domain.stock import StockChange

T = datetime(2026, 6, 18, tzinfo=timezone.utc)


def test_every_change_owes_the_movement_of_its_deltas():
    for change, kind in ((StockChange.hold("s", "r", 2), rules.RESERVE), (StockChange.unhold("s", "r", 2), rules.RELEASE),
                         (StockChange.sell("s", "r", 2), rules.COMMIT), (StockChange.adjust("s", "k", -2, "x"), rules.ADJUST),
                         (StockChange.give_back("s", "t", 2), rules.RETURN), (StockChange.pool_out("s", "f", 2), rules.POOL_OUT)):
        assert change.movement.kind == kind and change.deltas == rules.deltas(kind, change.movement.quantity)


def test_a_take_is_guarded_by_what_is_available_and_a_give_back_by_the_hold():
    assert StockChange.hold("s", "r", 3).min_available == 3
    assert StockChange.pool_out("s", "f", 4).min_available == 4
    assert StockChange.adjust("s", "k", -5, "x").min_available == 5
    assert StockChange.adjust("s", "k", 5, "x").min_available == 0
    assert StockChange.unhold("s", "r", 3).mark == rules.Mark(rules.HOLDS, "r", 3, None)
    assert StockChange.hold("s", "r", 3).mark == rules.Mark(rules.HOLDS, "r", None, 3)


def test_a_change_is_one_conditional_update_never_a_write_of_read_levels():
    query, update = _change("mch_1", StockChange.hold("sku_1", "rsv_1", 2))
    assert query == {"_id": "sku_1", "merchant_id": "mch_1", "holds.rsv_1": {"$exists": False},
                     "available": {"$gte": 2}}
    assert update["$inc"] == {"reserved": 2, "available": -2, "pending_count": 1}
    assert update["$set"]["holds.rsv_1"] == 2 and "pending.RESERVE:rsv_1:sku_1" in update["$set"]
    query, update = _change("mch_1", StockChange.sell("sku_1", "rsv_1", 2))
    assert query["holds.rsv_1"] == 2 and update["$unset"] == {"holds.rsv_1": ""}
    assert update["$inc"] == {"on_hand": -2, "reserved": -2, "pending_count": 1}
    _, update = _change("mch_1", StockChange.pool_out("sku_1", "fls_1", 5))
    assert update["$set"]["pool_sync.fls_1"] == {"sold": 0, "returned": 0}


def test_reservation_events_go_out_on_the_subjects_their_message_declares():
    r = Reservation.open("rsv_1", "mch_1", "ord_1", [("sku_1", 2)], T, T)
    r.confirm()
    r.move_to(rules.RELEASED)
    events = messages.reservation_events(r, r.pull_events(), r.next_version)
    assert [e.subject for e in events] == ["siyu.catalog.reservation.reserved", "siyu.catalog.reservation.released"]
    envelope = decode(events[0].data)
    payload = events_pb2.ReservationChanged()
    envelope.payload.Unpack(payload)
    assert envelope.aggregate_version == 2 and envelope.aggregate_id == "rsv_1"
    assert payload.reservation.state == catalog_pb2.RESERVATION_STATE_RESERVED
    assert payload.reservation.lines[0].quantity == 2


def test_an_unfulfillable_reservation_is_published_as_released_on_its_own_subject():
    r = Reservation.open("rsv_1", "mch_1", "ord_1", [("sku_1", 2)], T, T)
    r.move_to(rules.RELEASED)
    r.pull_events()
    r.paid_after_release(held_again=False)
    (event,) = messages.reservation_events(r, r.pull_events(), 3)
    payload = events_pb2.ReservationChanged()
    decode(event.data).payload.Unpack(payload)
    assert event.subject == "siyu.catalog.reservation.unfulfillable"
    assert payload.reservation.state == catalog_pb2.RESERVATION_STATE_RELEASED
