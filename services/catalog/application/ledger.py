"""Storing the movements stock writes owe the ledger, and the units-sold count they change."""
from __future__ import annotations

from services.catalog.application.ports import LedgerRepository
from services.catalog.domain import stock as rules


class Ledger:
    def __init__(self, movements: LedgerRepository):
        self.movements = movements

    async def record(self, merchant_id: str, movement: rules.Movement, product_id: str = "",
                     at_ms: int | None = None) -> None:
        """Store a movement; the first time it is stored, count what it sold or returned
        against its product."""
        fresh = await self.movements.record(merchant_id, movement, at_ms)
        sold = rules.sales_delta(movement.kind, movement.quantity)
        if fresh and sold:
            await self.movements.add_sales(merchant_id, product_id, sold)
