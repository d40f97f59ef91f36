"""The job that tells live rooms of their flash sales (domain/live_room.py). It reads the
running sales bound to a session and writes a sale only when its room must hear
something, at most once a second per sale: the reserve path is not slowed. Each
announcement is one conditional update on what the room last heard, so with several
replicas running the job, one of them tells the room."""
from __future__ import annotations

from datetime import datetime
from typing import Callable, Protocol

from siyu_kit.protos import epoch_ms, utcnow

from services.catalog.domain import live_room as rules
from services.catalog.domain.live_room import RoomSale

BATCH = 200


class RoomSales(Protocol):
    async def running(self, now: datetime, limit: int) -> list[RoomSale]:
        """Sales bound to a live session that run now, of every merchant."""
        ...

    async def announce_started(self, sale: RoomSale, now_ms: int) -> bool:
        """flash_sale_started into the room, unless it was announced already (False)."""
        ...

    async def announce_stock(self, sale: RoomSale, now_ms: int) -> bool:
        """stock_left (sale.available) into the room, if the room last heard what `sale` says
        it heard (False: another replica told it meanwhile)."""
        ...


class RoomAnnouncements:
    def __init__(self, sales: RoomSales, clock: Callable[[], datetime] = utcnow):
        self.sales = sales
        self.clock = clock

    async def announce(self) -> int:
        now = self.clock()
        now_ms, told = epoch_ms(now), 0
        for sale in await self.sales.running(now, BATCH):
            kind = rules.next_announcement(sale, now_ms)
            if kind == rules.STARTED:
                told += await self.sales.announce_started(sale, now_ms)
            elif kind == rules.STOCK_LEFT:
                told += await self.sales.announce_stock(sale, now_ms)
        return told
