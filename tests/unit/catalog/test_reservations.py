"""Reserving, committing and releasing stock, the late payment and the sweeper, on fakes."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from siyu_kit.aggregate import Move
from siyu_kit.errors import AlreadyExists, FailedPrecondition, NotFound
from siyu_kit.ids import new_id

from services.catalog.application import validation
from services.catalog.application.ports import COMMIT, KEEP, RELEASE
from services.catalog.domain import stock as rules
from services.catalog.domain.reservations import Reservation
from services.catalog.domain.stock import Stock
from tests.fakes.catalog import MERCHANT, T0, service, staff

SKU_A, SKU_B, SKU_C = new_id("sku"), new_id("sku"), new_id("sku")
RID = "rsv-1"


async def stocked(shop, **levels: int) -> None:
    """SKUs with the given units on hand, as a product upsert leaves them."""
    for sku_id, units in ({SKU_A: levels.get("a", 10), SKU_B: levels.get("b", 10)}).items():
        await shop.stock.add(Stock(sku_id, MERCHANT, "prd_1", units, 0, units))


def cmd(rid: str = RID, lines=((SKU_A, 2), (SKU_B, 1)), expires_in: timedelta = timedelta(minutes=15)):
    return validation.ReserveStock(rid, "ord_1", list(lines), T0 + expires_in)


async def reserve(shop, *args, **kwargs) -> Reservation:
    with service():
        return await shop.stock_cases.reserve(cmd(*args, **kwargs))


# ---- the aggregate

def test_a_reservation_moves_once_to_committed_or_released_and_records_why():
    r = Reservation.open(RID, MERCHANT, "ord_1", [(SKU_A, 1)], T0, T0)
    with pytest.raises(FailedPrecondition) as incomplete:
        r.move_to(rules.COMMITTED)
    assert incomplete.value.reason == "RESERVATION_INCOMPLETE"
    assert r.confirm() is Move.APPLY and r.confirm() is Move.REPEAT
    assert r.move_to(rules.COMMITTED, "evt_1") is Move.APPLY and not r.settled and r.last_event_id == "evt_1"
    assert r.move_to(rules.COMMITTED) is Move.REPEAT
    with pytest.raises(FailedPrecondition) as refused:
        r.move_to(rules.RELEASED)
    assert refused.value.reason == "RESERVATION_COMMITTED"
    assert [type(e).__name__ for e in r.pull_events()] == ["ReservationReserved", "ReservationCommitted"]


def test_a_late_payment_reholds_or_is_unfulfillable_only_on_a_released_reservation():
    held = Reservation.open(RID, MERCHANT, "ord_1", [(SKU_A, 1)], T0, T0)
    with pytest.raises(FailedPrecondition):
        held.paid_after_release(True)
    held.move_to(rules.RELEASED)
    assert held.paid_after_release(True) is Move.APPLY
    assert held.state == rules.COMMITTED and held.units_key == rules.late_hold_key(RID)
    gone = Reservation.open("rsv-2", MERCHANT, "ord_2", [(SKU_A, 1)], T0, T0)
    gone.move_to(rules.RELEASED)
    assert gone.paid_after_release(False) is Move.APPLY
    assert gone.state == rules.RELEASED and gone.phase == rules.UNFULFILLABLE
    assert gone.paid_after_release(False) is Move.REPEAT
    assert [type(e).__name__ for e in gone.pull_events()] == ["ReservationReleased", "ReservationUnfulfillable"]


# ---- reserving

async def test_reserve_holds_every_line_and_records_the_reserved_event(shop):
    await stocked(shop)
    r = await reserve(shop)
    assert r.state == rules.RESERVED and r.confirmed and r.version == 2
    assert shop.stock.levels(SKU_A) == (10, 2, 8) and shop.stock.levels(SKU_B) == (10, 1, 9)
    assert shop.reservations.event_names(RID) == ["ReservationReserved"]
    # The hold's movement is owed by the stock, for the ledger writer job to store.
    assert shop.movements.kinds(SKU_A) == []
    assert shop.stock.records[SKU_A].pending.get(rules.movement_id(rules.RESERVE, SKU_A, RID))
    assert await shop.inventory_cases.store_owed_holds() == 2
    assert shop.movements.kinds(SKU_A) == ["RESERVE"]
    assert not shop.stock.records[SKU_A].pending.get(rules.movement_id(rules.RESERVE, SKU_A, RID))


async def test_reserve_holds_all_lines_or_none(shop):
    await stocked(shop, b=0)
    with pytest.raises(FailedPrecondition) as refused:
        await reserve(shop)
    assert refused.value.reason == "OUT_OF_STOCK"
    assert [v.field for v in refused.value.violations] == ["lines[1].quantity"]
    assert shop.stock.levels(SKU_A) == (10, 0, 10)
    assert shop.reservations.stored[RID].state == rules.RELEASED
    assert shop.reservations.event_names(RID) == ["ReservationReleased"]


async def test_reserve_refuses_unknown_skus_and_holds_nothing(shop):
    # The SKUs are read only once a hold fails: the reservation was written, and is released.
    with pytest.raises(NotFound) as missing:
        await reserve(shop)
    assert missing.value.reason == "SKU_NOT_FOUND"
    assert [v.field for v in missing.value.violations] == ["lines[0].sku_id", "lines[1].sku_id"]
    assert shop.reservations.stored[RID].state == rules.RELEASED


async def test_reserve_names_the_one_unknown_sku_among_stocked_ones(shop):
    await stocked(shop)
    with pytest.raises(NotFound) as missing:
        await reserve(shop, lines=((SKU_A, 1), (SKU_C, 1)))
    assert [v.field for v in missing.value.violations] == ["lines[1].sku_id"]
    assert shop.stock.levels(SKU_A) == (10, 0, 10)
    assert shop.reservations.stored[RID].state == rules.RELEASED


async def test_a_repeated_reserve_returns_the_reservation_without_holding_twice(shop):
    await stocked(shop)
    first = await reserve(shop)
    again = await reserve(shop)
    assert again.id == first.id and again.version == first.version
    assert shop.stock.levels(SKU_A) == (10, 2, 8)
    assert shop.reservations.event_names(RID) == ["ReservationReserved"]


async def test_an_interrupted_reserve_is_completed_by_its_repeat(shop):
    await stocked(shop)
    await shop.reservations.add(Reservation.open(RID, MERCHANT, "ord_1", [(SKU_A, 2), (SKU_B, 1)],
                                                 T0 + timedelta(minutes=15), T0))
    r = await reserve(shop)
    assert r.confirmed and shop.stock.levels(SKU_A) == (10, 2, 8)


async def test_a_released_reservation_id_is_not_reserved_again(shop):
    await stocked(shop)
    await reserve(shop)
    with service():
        await shop.stock_cases.release(RID)
    again = await reserve(shop)
    assert again.state == rules.RELEASED and shop.stock.levels(SKU_A) == (10, 0, 10)


async def test_reserve_retries_a_lost_compare_and_set(shop):
    await stocked(shop)
    shop.reservations.conflicts = 2
    r = await reserve(shop)
    assert r.confirmed and shop.reservations.event_names(RID) == ["ReservationReserved"]


async def test_a_caller_that_gives_up_leaves_nothing_held(shop):
    await stocked(shop)
    with service():
        task = asyncio.ensure_future(shop.stock_cases.reserve(cmd()))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert shop.reservations.stored[RID].state == rules.RELEASED
    assert shop.stock.levels(SKU_A) == (10, 0, 10)


# ---- committing and releasing

async def test_paid_commits_and_sells_the_units_once(shop):
    await stocked(shop)
    await reserve(shop)
    r = await shop.stock_cases.on_paid(MERCHANT, RID, "evt_paid")
    assert r.state == rules.COMMITTED and r.settled and r.last_event_id == "evt_paid"
    assert shop.stock.levels(SKU_A) == (8, 0, 8)
    assert shop.products.docs == {}  # no product to count sales on in this test
    again = await shop.stock_cases.on_paid(MERCHANT, RID, "evt_paid")
    assert again.state == rules.COMMITTED and shop.stock.levels(SKU_A) == (8, 0, 8)
    assert shop.reservations.event_names(RID) == ["ReservationReserved", "ReservationCommitted"]
    await shop.inventory_cases.store_owed_holds()
    assert shop.movements.kinds(SKU_A) == ["COMMIT", "RESERVE"]


async def test_release_gives_the_units_back_and_repeats_as_done(shop):
    await stocked(shop)
    await reserve(shop)
    with service():
        released = await shop.stock_cases.release(RID)
        again = await shop.stock_cases.release(RID)
    assert released.state == again.state == rules.RELEASED
    assert shop.stock.levels(SKU_A) == (10, 0, 10)
    assert shop.reservations.event_names(RID) == ["ReservationReserved", "ReservationReleased"]


async def test_a_committed_reservation_cannot_be_released(shop):
    await stocked(shop)
    await reserve(shop)
    await shop.stock_cases.on_paid(MERCHANT, RID, "evt_paid")
    with pytest.raises(FailedPrecondition) as refused:
        await shop.stock_cases.on_order(MERCHANT, RID, rules.RELEASED, "evt_cancel")
    assert refused.value.reason == "RESERVATION_COMMITTED"


async def test_an_unknown_reservation_is_not_found(shop):
    with pytest.raises(NotFound):
        await shop.stock_cases.on_paid(MERCHANT, "nope", "evt")
    with service(), pytest.raises(NotFound):
        await shop.stock_cases.get_reservation("nope")


async def test_a_move_that_keeps_losing_gives_up_with_the_busy_reason(shop):
    await stocked(shop)
    await reserve(shop)
    shop.reservations.conflicts = 100
    with pytest.raises(FailedPrecondition) as busy:
        await shop.stock_cases.on_paid(MERCHANT, RID, "evt")
    assert busy.value.reason == "RESERVATION_BUSY"
    assert shop.stock.levels(SKU_A) == (10, 2, 8)


async def test_an_interrupted_stock_move_is_finished_by_its_repeat(shop):
    await stocked(shop)
    r = await reserve(shop)
    r.move_to(rules.COMMITTED, "evt")
    await shop.reservations.save(r)  # claimed, then the process died before the stock moved
    again = await shop.stock_cases.on_paid(MERCHANT, RID, "evt")
    assert again.state == rules.COMMITTED and again.settled and shop.stock.levels(SKU_A) == (8, 0, 8)


# ---- a payment after the release

async def test_a_payment_after_the_release_holds_the_units_again_and_sells_them(shop):
    await stocked(shop)
    await reserve(shop)
    with service():
        await shop.stock_cases.release(RID)
    r = await shop.stock_cases.on_paid(MERCHANT, RID, "evt_paid")
    assert r.state == rules.COMMITTED and r.hold_key == rules.late_hold_key(RID)
    assert shop.stock.levels(SKU_A) == (8, 0, 8) and shop.stock.levels(SKU_B) == (9, 0, 9)
    assert shop.reservations.event_names(RID) == ["ReservationReserved", "ReservationReleased",
                                                  "ReservationCommitted"]
    again = await shop.stock_cases.on_paid(MERCHANT, RID, "evt_paid")
    assert again.state == rules.COMMITTED and shop.stock.levels(SKU_A) == (8, 0, 8)


async def test_a_payment_after_the_release_with_the_units_gone_is_unfulfillable(shop):
    await stocked(shop, a=2)
    await reserve(shop)
    with service():
        await shop.stock_cases.release(RID)
        await shop.stock_cases.reserve(cmd("rsv-other", lines=((SKU_A, 2),)))
    r = await shop.stock_cases.on_paid(MERCHANT, RID, "evt_paid")
    assert r.state == rules.RELEASED and r.unfulfillable
    # The line that could be held again (SKU_B) was given back.
    assert shop.stock.levels(SKU_B) == (10, 0, 10) and shop.stock.levels(SKU_A) == (2, 2, 0)
    assert shop.reservations.event_names(RID)[-1] == "ReservationUnfulfillable"
    again = await shop.stock_cases.on_paid(MERCHANT, RID, "evt_paid")
    assert again.unfulfillable and shop.reservations.event_names(RID).count("ReservationUnfulfillable") == 1


# ---- the sweeper

async def test_the_sweeper_does_what_the_order_service_says(shop):
    await stocked(shop, a=10, b=10)
    for rid in ("rsv-commit", "rsv-release", "rsv-keep", "rsv-unknown"):
        await reserve(shop, rid, lines=((SKU_A, 1),), expires_in=timedelta(seconds=1))
    shop.orders.verdicts = {"rsv-commit": COMMIT, "rsv-release": RELEASE, "rsv-keep": KEEP, "rsv-unknown": None}
    assert await shop.stock_cases.sweep(T0 + timedelta(minutes=1)) == 2
    states = {rid: r.state for rid, r in shop.reservations.stored.items()}
    assert states == {"rsv-commit": rules.COMMITTED, "rsv-release": rules.RELEASED, "rsv-keep": rules.RESERVED,
                      "rsv-unknown": rules.RESERVED}
    assert shop.stock.levels(SKU_A) == (9, 2, 7)


async def test_the_sweeper_leaves_reservations_that_are_not_due(shop):
    await stocked(shop)
    await reserve(shop)
    shop.orders.verdicts = {RID: RELEASE}
    assert await shop.stock_cases.sweep(T0) == 0
    assert shop.reservations.stored[RID].state == rules.RESERVED


async def test_the_sweeper_finishes_interrupted_stock_moves(shop):
    await stocked(shop)
    r = await reserve(shop)
    r.move_to(rules.RELEASED)
    await shop.reservations.save(r)
    assert await shop.stock_cases.sweep(T0 + timedelta(minutes=1)) == 1
    assert shop.reservations.stored[RID].settled and shop.stock.levels(SKU_A) == (10, 0, 10)


async def test_get_stock_is_for_staff(shop):
    await stocked(shop)
    with staff():
        assert (await shop.stock_cases.get_stock(SKU_A)).available == 10
        with pytest.raises(NotFound):
            await shop.stock_cases.get_stock(SKU_C)
    with service(), pytest.raises(Exception):
        await shop.stock_cases.get_stock(SKU_A)


async def test_a_reservation_id_in_use_by_another_merchant_is_taken(shop):
    await stocked(shop)
    await reserve(shop)
    other = "mch_01JTESTOTHER000000000000000"
    await shop.stock.add(Stock(SKU_C, other, "prd_2", 5, 0, 5))
    with service(other), pytest.raises(AlreadyExists) as taken:
        await shop.stock_cases.reserve(cmd(lines=((SKU_C, 1),)))
    assert taken.value.reason == "RESERVATION_ID_TAKEN"
