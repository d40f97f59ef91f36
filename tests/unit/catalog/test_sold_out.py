"""A sold-out flash sale answered from memory: no repository call while the pool is known
empty, forgotten at once when a release here gives units back, and for a replica that did
not see the release, never longer than the memory's time; the pool's own conditional
update still decides every sale."""
from __future__ import annotations

import pytest

from siyu_kit.errors import FailedPrecondition
from siyu_kit.ids import new_id

from services.catalog.application.flash_sales import FlashSaleUseCases
from services.catalog.application.sold_out import ForgetOnRelease, SoldOut
from services.catalog.domain import flash_sales as rules
from tests.fakes.catalog import service
from tests.unit.catalog.test_flash_sales import buy, product, sale_of


class Ticks:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingTakes:
    """The fake repository, counting the pool takes that reach it."""

    def __init__(self, sales):
        self._sales = sales
        self.takes = 0

    def __getattr__(self, name):
        return getattr(self._sales, name)

    async def take(self, *args, **kwargs):
        self.takes += 1
        return await self._sales.take(*args, **kwargs)


def remembering(shop, ticks: Ticks) -> tuple[FlashSaleUseCases, CountingTakes, SoldOut]:
    """The shop's flash-sale use cases as the catalog wires them: releases clear the memory."""
    memory = SoldOut(ttl_s=1.0, clock=ticks)
    counted = CountingTakes(shop.sales)
    sales = ForgetOnRelease(counted, memory)
    shop.flash_cases.sales = sales
    shop.flash_cases.sold_out = memory
    shop.stock_cases.pools.sales = sales
    return shop.flash_cases, counted, memory


async def sold_out(cases, sale_id: str) -> None:
    with service(), pytest.raises(FailedPrecondition) as refused:
        await cases.reserve(buy(sale_id, new_id("mem")))
    assert refused.value.reason == rules.SOLD_OUT


async def test_an_empty_pool_is_answered_without_the_repository_until_a_release_here(shop):
    ticks = Ticks()
    cases, counted, memory = remembering(shop, ticks)
    sale = await sale_of(shop, await product(shop), units=1, limit=1)
    with service():
        won, after = await cases.reserve(buy(sale.id, new_id("mem")))
    assert after.available == 0 and memory.known(sale.merchant_id, sale.id)

    takes = counted.takes
    for _ in range(5):
        await sold_out(cases, sale.id)
    assert counted.takes == takes, "a press on a pool known empty reaches no repository"

    # The winner's order is cancelled: the release gives the unit back and the memory forgets.
    with service():
        await shop.stock_cases.release(won.id)
    assert not memory.known(sale.merchant_id, sale.id)
    with service():
        _, after = await cases.reserve(buy(sale.id, new_id("mem")))
    assert after.available == 0 and shop.sales.sales[sale.id].available == 0


async def test_a_replica_that_did_not_see_the_release_sells_again_once_its_memory_passes(shop):
    ticks = Ticks()
    cases, _, _ = remembering(shop, ticks)
    sale = await sale_of(shop, await product(shop), units=1, limit=1)
    # Another replica with its own memory, on the same pool.
    other_memory = SoldOut(ttl_s=1.0, clock=ticks)
    other = FlashSaleUseCases(shop.sales, shop.products, shop.stock, shop.reservations, shop.flash_cases.ledger,
                              shop.stock_cases.pools, shop.stock_cases, shop.clock, sold_out=other_memory)
    with service():
        won, _ = await cases.reserve(buy(sale.id, new_id("mem")))
    await sold_out(other, sale.id)  # learnt from the pool itself
    assert other_memory.known(sale.merchant_id, sale.id)
    with service():
        await shop.stock_cases.release(won.id)
    # Units are back, but this replica did not release them: SOLD_OUT for at most its memory.
    await sold_out(other, sale.id)
    ticks.now += 1.0
    with service():
        _, after = await other.reserve(buy(sale.id, new_id("mem")))
    assert after.available == 0


def test_the_memory_holds_for_its_time_and_a_release_forgets_it():
    ticks = Ticks()
    memory = SoldOut(ttl_s=1.0, clock=ticks)
    assert not memory.known("m", "s")
    memory.remember("m", "s")
    ticks.now += 0.99
    assert memory.known("m", "s") and not memory.known("m", "other") and not memory.known("x", "s")
    ticks.now += 0.01
    assert not memory.known("m", "s")
    memory.remember("m", "s")
    memory.forget("m", "s")
    assert not memory.known("m", "s")


async def test_only_a_release_that_gave_units_back_forgets():
    memory = SoldOut(ttl_s=1.0, clock=Ticks())

    class Pool:
        def __init__(self, answer: bool):
            self.answer = answer

        async def release(self, *args) -> bool:
            return self.answer

    memory.remember("m", "s")
    assert await ForgetOnRelease(Pool(False), memory).release("m", "s", "rsv", 1) is False
    assert memory.known("m", "s")
    assert await ForgetOnRelease(Pool(True), memory).release("m", "s", "rsv", 1) is True
    assert not memory.known("m", "s")
