"""Creating a flash sale, buying from its pool, and the job, on fakes."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from siyu_kit.aggregate import StaleVersion
from siyu_kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from siyu_kit.ids import new_id

from services.catalog.application import validation
from services.catalog.application.flash_sales import CreateFlashSale, ReserveFlashSale
from services.catalog.domain import flash_sales as rules, stock as stock_rules
from tests.fakes.catalog import MERCHANT, T0, service, staff

START, END = T0 - timedelta(minutes=1), T0 + timedelta(minutes=30)


async def product(shop, stock: int = 10, list_price: int = 1000) -> str:
    with staff():
        view, _ = await shop.product_cases.upsert_product(validation.UpsertProduct(
            code="TEE", title="有机棉T恤", status="ON_SHELF",
            skus=[validation.SkuInput("TEE-M", list_price=list_price, initial_stock=stock)]))
    return view.doc["skus"][0]["sku_id"]


async def sale_of(shop, sku_id: str, units: int = 3, key: str = "fs-1", price: int = 500, limit: int = 2,
                  starts_at=START):
    with staff():
        return await shop.flash_cases.create(CreateFlashSale(key, sku_id, price, units, starts_at, END,
                                                             per_member_limit=limit))


def buy(sale_id: str, member_id: str, quantity: int = 1, rid: str = "", now=T0) -> ReserveFlashSale:
    return ReserveFlashSale(rid or new_id("rsv"), new_id("ord"), sale_id, member_id, quantity,
                            now + timedelta(minutes=5))


async def test_creating_a_sale_moves_its_units_into_the_pool_once(shop):
    sku_id = await product(shop)
    sale = await sale_of(shop, sku_id)
    again = await sale_of(shop, sku_id)
    assert sale.pooled and again.id == sale.id and sale.version == 2
    assert shop.stock.levels(sku_id) == (10, 3, 7)
    assert shop.movements.kinds(sku_id) == ["INITIAL", "POOL_OUT"]
    with service():
        assert (await shop.flash_cases.get(sale.id)).available == 3
        sales, token = await shop.flash_cases.list_sales("", 0, "")
    assert [s.id for s in sales] == [sale.id] and token == ""


async def test_a_sale_needs_a_price_below_the_list_price_and_enough_stock(shop):
    sku_id = await product(shop, stock=2)
    with pytest.raises(InvalidArgument):
        await sale_of(shop, sku_id, price=1000)
    with pytest.raises(FailedPrecondition) as short:
        await sale_of(shop, sku_id, units=3)
    assert short.value.reason == "OUT_OF_STOCK" and shop.sales.sales == {}
    with pytest.raises(NotFound):
        await sale_of(shop, new_id("sku"), key="fs-2")


async def test_a_member_buys_within_the_limit_and_the_reservation_records_its_event(shop):
    sku_id = await product(shop)
    sale = await sale_of(shop, sku_id)
    member = new_id("mem")
    with service():
        reservation, after = await shop.flash_cases.reserve(buy(sale.id, member, 2))
        with pytest.raises(FailedPrecondition) as limit:
            await shop.flash_cases.reserve(buy(sale.id, member, 1))
    assert limit.value.reason == rules.LIMIT_REACHED
    assert reservation.confirmed and reservation.flash_sale_id == sale.id and after.available == 1
    assert shop.sales.sales[sale.id].available == 1 and shop.sales.used(sale.id, member) == 2
    assert shop.reservations.event_names(reservation.id) == ["ReservationReserved"]


async def test_a_pool_of_another_activity_is_neither_listed_nor_bought_as_a_flash_sale(shop):
    sku_id = await product(shop)
    with staff():
        pool = await shop.flash_cases.create(CreateFlashSale("gb-1", sku_id, 500, 3, START, END, kind="GROUP_BUY"))
    member = new_id("mem")
    with service():
        assert (await shop.flash_cases.list_sales("", 0, ""))[0] == []
        with pytest.raises(NotFound):
            await shop.flash_cases.reserve(buy(pool.id, member))
        reservation, after = await shop.flash_cases.reserve(replace(buy(pool.id, member), kind="GROUP_BUY"))
    assert reservation.flash_sale_id == pool.id and after.available == 2 and after.kind == "GROUP_BUY"


async def test_a_repeated_reserve_returns_the_same_reservation(shop):
    sku_id = await product(shop)
    sale = await sale_of(shop, sku_id)
    member, request = new_id("mem"), None
    with service():
        request = buy(sale.id, member, 1)
        first, _ = await shop.flash_cases.reserve(request)
        again, _ = await shop.flash_cases.reserve(request)
        with pytest.raises(AlreadyExists):
            await shop.flash_cases.reserve(buy(sale.id, new_id("mem"), 1, rid=first.id))
    assert again.id == first.id and shop.sales.sales[sale.id].available == 2


async def test_sold_out_not_started_and_ended_are_refused(shop):
    sku_id = await product(shop)
    sale = await sale_of(shop, sku_id, units=1, limit=1)
    with service():
        await shop.flash_cases.reserve(buy(sale.id, new_id("mem")))
        with pytest.raises(FailedPrecondition) as sold_out:
            await shop.flash_cases.reserve(buy(sale.id, new_id("mem")))
    assert sold_out.value.reason == rules.SOLD_OUT
    later = await sale_of(shop, sku_id, units=1, key="fs-later", starts_at=T0 + timedelta(minutes=10))
    with service(), pytest.raises(FailedPrecondition) as early:
        await shop.flash_cases.reserve(buy(later.id, new_id("mem")))
    assert early.value.reason == rules.NOT_STARTED
    shop.clock.now = END + timedelta(seconds=1)
    with service(), pytest.raises(FailedPrecondition) as ended:
        await shop.flash_cases.reserve(buy(later.id, new_id("mem"), now=shop.clock.now))
    assert ended.value.reason == rules.ENDED_REASON


async def test_a_paid_flash_reservation_is_sold_and_the_stock_follows_the_pool(shop):
    sku_id = await product(shop)
    sale = await sale_of(shop, sku_id)
    with service():
        reservation, _ = await shop.flash_cases.reserve(buy(sale.id, new_id("mem"), 2))
    await shop.stock_cases.on_paid(MERCHANT, reservation.id, "evt_paid")
    assert shop.sales.sales[sale.id].sold == 2
    assert shop.stock.levels(sku_id) == (8, 1, 7)
    assert shop.products.docs[shop.sales.sales[sale.id].product_id]["sales"] == 2


async def test_a_released_flash_reservation_frees_its_units_and_the_members_limit(shop):
    sku_id = await product(shop)
    sale = await sale_of(shop, sku_id)
    member = new_id("mem")
    with service():
        reservation, _ = await shop.flash_cases.reserve(buy(sale.id, member, 2))
        await shop.stock_cases.release(reservation.id)
    assert shop.sales.sales[sale.id].available == 3 and shop.sales.used(sale.id, member) == 0
    # Paid after all: the units are taken again and count against the member again.
    paid = await shop.stock_cases.on_paid(MERCHANT, reservation.id, "evt_paid")
    assert paid.state == stock_rules.COMMITTED and shop.sales.sales[sale.id].sold == 2
    assert shop.sales.used(sale.id, member) == 2


async def test_the_job_gives_unsold_units_back_after_the_sale(shop):
    sku_id = await product(shop)
    sale = await sale_of(shop, sku_id)
    with service():
        reservation, _ = await shop.flash_cases.reserve(buy(sale.id, new_id("mem"), 1))
    await shop.stock_cases.on_paid(MERCHANT, reservation.id, "evt_paid")
    shop.clock.now = END + timedelta(minutes=1)
    assert await shop.flash_cases.tend() >= 1
    assert shop.sales.sales[sale.id].returned == 2
    assert shop.stock.levels(sku_id) == (9, 0, 9)
    assert await shop.flash_cases.tend() == 0


async def test_the_job_settles_an_ended_sale_only_once_nothing_is_free_or_held(shop):
    """Settled sales are never scanned again; one with units still held at its end is
    tended until the hold is paid or released."""
    sku_id = await product(shop)
    sale = await sale_of(shop, sku_id)
    with service():
        held, _ = await shop.flash_cases.reserve(buy(sale.id, new_id("mem"), 1))
    assert await shop.flash_cases.tend() == 0 and sale.id not in shop.sales.settled  # still running
    shop.clock.now = END + timedelta(minutes=1)
    await shop.flash_cases.tend()
    assert shop.sales.sales[sale.id].available == 0 and sale.id not in shop.sales.settled  # a hold remains
    with service():
        await shop.stock_cases.release(held.id)
    assert shop.sales.sales[sale.id].available == 1
    await shop.flash_cases.tend()  # the released units go back, then the sale is settled
    assert shop.sales.sales[sale.id].returned == 3 and shop.sales.sales[sale.id].available == 0
    assert sale.id in shop.sales.settled
    assert await shop.sales.ended_with_units(shop.clock.now, 10) == []
    assert await shop.sales.holding("", 10) == []


async def test_the_job_releases_pool_holds_whose_reservation_was_never_written(shop):
    sku_id = await product(shop)
    sale = await sale_of(shop, sku_id)
    member = new_id("mem")
    hold = rules.PoolHold(1, member, int((T0 - timedelta(minutes=5)).timestamp() * 1000))
    assert await shop.sales.take(MERCHANT, sale.id, "rsv-orphan", hold, T0) is not None
    await shop.sales.count(MERCHANT, sale.id, member, "rsv-orphan", 1, 2)
    assert await shop.flash_cases.tend() == 1
    assert shop.sales.sales[sale.id].available == 3 and shop.sales.used(sale.id, member) == 0


async def test_a_catch_up_that_loses_to_another_looks_again_and_gives_up_for_the_job_to_retry(shop):
    sku_id = await product(shop)
    sale = await sale_of(shop, sku_id)
    with service():
        reservation, _ = await shop.flash_cases.reserve(buy(sale.id, new_id("mem"), 1))
    follow, lost = shop.sales.follow, []

    async def losing_once(merchant_id, pool, applied):
        if not lost:
            lost.append(pool.sale_id)
            raise StaleVersion("another catch-up went first")
        return await follow(merchant_id, pool, applied)

    shop.sales.follow = losing_once
    await shop.stock_cases.on_paid(MERCHANT, reservation.id, "evt_paid")
    assert lost == [sale.id] and shop.stock.levels(sku_id) == (9, 2, 7) and not shop.sales.unsynced_ids

    async def always_losing(merchant_id, pool, applied):
        raise StaleVersion("another catch-up went first")

    shop.sales.follow = always_losing
    with service():
        second, _ = await shop.flash_cases.reserve(buy(sale.id, new_id("mem"), 1))
    await shop.stock_cases.on_paid(MERCHANT, second.id, "evt_paid_2")
    assert shop.sales.unsynced_ids == {sale.id}  # the job catches up later
    shop.sales.follow = follow
    assert await shop.flash_cases.tend() == 1 and shop.stock.levels(sku_id) == (8, 1, 7)
