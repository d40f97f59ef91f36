"""Suppliers: onboarding, details, disabling, SKU links with a supply price, and what each
supplier is owed (from the split postings of a range of business days)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from siyu_kit import context, retry
from siyu_kit.errors import NotFound
from siyu_kit.ids import new_id
from siyu_kit.protos import to_storage_precision, utcnow

from services.order.application.finance_ports import SplitPostings, SupplierLinks, SupplierRepository
from services.order.application.ports import Catalog
from services.order.domain import finance
from services.order.domain.suppliers import Supplier, SupplierDetails, SupplierLink, SupplierState

DEFAULT_PAGE = 20


@dataclass
class SupplierUseCases:
    suppliers: SupplierRepository
    links: SupplierLinks
    postings: SplitPostings
    catalog: Catalog
    clock: Callable[[], datetime] = utcnow

    def _now(self) -> datetime:
        return to_storage_precision(self.clock())

    async def _supplier(self, merchant_id: str, supplier_id: str) -> Supplier:
        supplier = await self.suppliers.get(merchant_id, supplier_id)
        if supplier is None:
            raise NotFound(f"supplier {supplier_id} not found")
        return supplier

    async def create(self, idempotency_key: str, details: SupplierDetails) -> Supplier:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        existing = await self.suppliers.by_key(ctx.merchant_id, idempotency_key)
        if existing is not None:
            return existing
        supplier = Supplier(id=new_id("sup"), merchant_id=ctx.merchant_id, details=details,
                            state=SupplierState.ACTIVE, created_at=self._now())
        if not await self.suppliers.add(supplier, idempotency_key):
            found = await self.suppliers.by_key(ctx.merchant_id, idempotency_key)
            assert found is not None
            return found
        return supplier

    async def update(self, supplier_id: str, details: SupplierDetails | None, disable: bool) -> Supplier:
        ctx = context.current()
        ctx.require_staff("OPERATOR")

        async def attempt() -> Supplier:
            supplier = await self._supplier(ctx.merchant_id, supplier_id)
            now = self._now()
            if details is not None:
                supplier.update(details, now)
            if disable:
                supplier.disable(now)
            await self.suppliers.save(supplier)
            return supplier

        return await retry.on_conflict(attempt, gave_up="the supplier changed while updating; try again")

    async def list(self, page_size: int, page_token: str) -> tuple[list[Supplier], str]:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "FINANCE")
        size = page_size or DEFAULT_PAGE
        found = await self.suppliers.page(ctx.merchant_id, page_token, size + 1)
        return found[:size], (found[size - 1].id if len(found) > size else "")

    async def link(self, sku_id: str, supplier_id: str, supply_price: int) -> SupplierLink:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        supplier = await self._supplier(ctx.merchant_id, supplier_id)
        if sku_id not in await self.catalog.skus([sku_id]):
            raise NotFound(f"SKU {sku_id} not found")
        supplier.require_active()
        link = SupplierLink(merchant_id=ctx.merchant_id, sku_id=sku_id, supplier_id=supplier_id,
                            supply_price=supply_price, updated_at=self._now())
        await self.links.put(link)
        return link

    async def unlink(self, sku_id: str) -> None:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        if not await self.links.remove(ctx.merchant_id, sku_id):
            raise NotFound(f"SKU {sku_id} has no supplier link")

    async def list_links(self, supplier_id: str, page_size: int, page_token: str) -> tuple[list[SupplierLink], str]:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "FINANCE")
        if supplier_id:
            await self._supplier(ctx.merchant_id, supplier_id)
        size = page_size or DEFAULT_PAGE
        found = await self.links.page(ctx.merchant_id, supplier_id, page_token, size + 1)
        return found[:size], (found[size - 1].sku_id if len(found) > size else "")

    async def payable(self, supplier_id: str, from_day: str, to_day: str) -> finance.SupplierPayable:
        ctx = context.current()
        ctx.require_staff("FINANCE")
        days = finance.day_range(from_day, to_day)
        await self._supplier(ctx.merchant_id, supplier_id)
        postings = await self.postings.of_days(ctx.merchant_id, days[0], days[-1])
        return finance.supplier_payable(supplier_id, postings)
