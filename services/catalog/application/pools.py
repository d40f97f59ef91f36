"""Flash-sale pools after a reservation: a paid reservation's units are sold, a released
one's are free again, a late payment takes them again; the SKU's stock follows its pool.

Reservations (application.stock) and flash sales (application.flash_sales) both use this;
it uses neither."""
from __future__ import annotations

from siyu_kit import retry
from siyu_kit.errors import Conflict
from siyu_kit.protos import epoch_ms

from services.catalog.application.ledger import Ledger
from services.catalog.application.ports import FlashSaleRepository
from services.catalog.domain import flash_sales as rules, stock as stock_rules
from services.catalog.domain.reservations import Reservation


class Pools:
    def __init__(self, sales: FlashSaleRepository, ledger: Ledger):
        self.sales = sales
        self.ledger = ledger

    async def catch_up(self, merchant_id: str, sale_id: str, tries: int = 10) -> bool:
        """Bring the SKU's stock up to its pool's sold and returned units. Idempotent; False if
        it kept losing races to other catch-ups (the job tries again)."""
        async def attempt() -> bool:
            pool = await self.sales.counters(merchant_id, sale_id)
            applied = await self.sales.applied(merchant_id, pool.sku_id, sale_id) if pool else None
            if applied is None:
                return True  # no such sale, or its units never left the stock: nothing to follow
            todo = rules.catch_up(pool.sold, pool.returned, applied.sold, applied.returned)
            if not todo.nothing:
                for movement in await self.sales.follow(merchant_id, pool, applied):
                    await self.ledger.record(merchant_id, movement, pool.product_id)
            await self.sales.mark_synced(merchant_id, sale_id, pool.sold, pool.returned)
            return True

        try:
            return await retry.on_conflict(attempt, gave_up="the stock kept losing races to its pool",
                                           attempts=tries)
        except Conflict:
            return False

    async def settle(self, reservation: Reservation) -> None:
        """Move the pool of a COMMITTED or RELEASED flash reservation, each step at most once.
        Paid units are sold and the SKU's stock follows; released units are free again and no
        longer count against the member's limit (an unpaid order does not use it up)."""
        merchant_id, key, sale_id = reservation.merchant_id, reservation.units_key, reservation.flash_sale_id
        quantity = reservation.lines[0].quantity
        if reservation.state == stock_rules.COMMITTED:
            await self.sales.sell(merchant_id, sale_id, key, quantity)
            await self.catch_up(merchant_id, sale_id)
        else:
            await self.sales.release(merchant_id, sale_id, key, quantity)
            await self.sales.uncount(merchant_id, sale_id, reservation.member_id, key, quantity)

    async def hold_again(self, reservation: Reservation, key: str) -> bool:
        """A payment reached a released flash reservation: take its units from the pool again
        under `key` if they are free, and count them against the member's limit again (the
        member bought them; the limit is not checked a second time). False when the pool has
        too few units left."""
        merchant_id, sale_id = reservation.merchant_id, reservation.flash_sale_id
        quantity = reservation.lines[0].quantity
        hold = rules.PoolHold(quantity, reservation.member_id, epoch_ms(reservation.expires_at))
        held = await self.sales.take_again(merchant_id, sale_id, key, hold) \
            or await self.sales.hold_of(merchant_id, sale_id, key) is not None
        if held:
            await self.sales.count(merchant_id, sale_id, reservation.member_id, key, quantity, rules.ANY_LIMIT)
        return held
