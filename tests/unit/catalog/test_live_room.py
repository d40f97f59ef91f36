"""The flash sales of a live session as its room hears of them: started once, units left
at most once a second and only when they changed, at once at 0; several replicas of the
job tell the room once."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from hypothesis import given, strategies as st

from siyu_kit.ids import new_id

from services.catalog.application.live_room import RoomAnnouncements
from services.catalog.domain.live_room import STARTED, STOCK_LEFT, RoomSale, next_announcement

NOW = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)


def sale(**fields) -> RoomSale:
    base = RoomSale(new_id("fls"), new_id("mch"), new_id("liv"), new_id("prd"), new_id("sku"), 990, "CNY", 10, 10,
                    NOW + timedelta(hours=1))
    return replace(base, **fields)


def test_a_sale_not_announced_yet_is_announced_started():
    assert next_announcement(sale(), 0) == STARTED


def test_units_are_told_when_changed_at_most_once_a_second_and_at_once_at_zero():
    told = sale(announced_ms=10_000, announced_units=10)
    assert next_announcement(replace(told, available=10), 20_000) is None
    assert next_announcement(replace(told, available=9), 10_999) is None
    assert next_announcement(replace(told, available=9), 11_000) == STOCK_LEFT
    assert next_announcement(replace(told, available=0), 10_001) == STOCK_LEFT
    assert next_announcement(replace(told, available=0, announced_units=0), 10_001) is None


class FakeRoomSales:
    """The sales' room fields in memory, with the same guards as the store."""

    def __init__(self, *sales: RoomSale):
        self.sales = {s.id: s for s in sales}
        self.events: list[tuple[str, str, int]] = []

    async def running(self, now, limit):
        return list(self.sales.values())[:limit]

    async def announce_started(self, s, now_ms):
        if self.sales[s.id].announced_ms is not None:
            return False
        self.sales[s.id] = replace(self.sales[s.id], announced_ms=now_ms, announced_units=s.units)
        self.events.append((s.id, STARTED, s.units))
        return True

    async def announce_stock(self, s, now_ms):
        current = self.sales[s.id]
        if (current.announced_ms, current.announced_units) != (s.announced_ms, s.announced_units):
            return False
        self.sales[s.id] = replace(current, announced_ms=now_ms, announced_units=s.available)
        self.events.append((s.id, STOCK_LEFT, s.available))
        return True

    def sell(self, sale_id: str, n: int) -> None:
        self.sales[sale_id] = replace(self.sales[sale_id], available=self.sales[sale_id].available - n)


async def test_two_replicas_tell_the_room_once():
    store, clock = FakeRoomSales(sale()), [NOW]
    first, second = (RoomAnnouncements(store, lambda: clock[0]) for _ in range(2))
    assert await first.announce() + await second.announce() == 1
    [sale_id] = store.sales
    store.sell(sale_id, 4)
    clock[0] += timedelta(seconds=2)
    assert await first.announce() + await second.announce() == 1
    assert [(kind, units) for _, kind, units in store.events] == [(STARTED, 10), (STOCK_LEFT, 6)]


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1500)), max_size=30))
async def test_the_room_hears_each_change_throttled_and_always_the_last_zero(steps):
    store = FakeRoomSales(sale(units=20, available=20))
    [sale_id] = store.sales
    clock = [NOW]
    job = RoomAnnouncements(store, lambda: clock[0])
    await job.announce()
    times = [0]
    for sold, wait_ms in steps:
        store.sell(sale_id, min(sold, store.sales[sale_id].available))
        clock[0] += timedelta(milliseconds=wait_ms)
        if await job.announce():
            times.append(int((clock[0] - NOW).total_seconds() * 1000))
    told = [units for _, kind, units in store.events if kind == STOCK_LEFT]
    assert all(b != a for a, b in zip([20] + told, told))  # only changes
    for (previous, current), units in zip(zip(times, times[1:]), told):
        assert current - previous >= 1000 or units == 0
    if store.sales[sale_id].available == 0:
        clock[0] += timedelta(seconds=1)
        await job.announce()
        assert store.sales[sale_id].announced_units == 0  # a sold-out sale is always told
