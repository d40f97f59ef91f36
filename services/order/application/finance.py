"""The finance desk (财务管理): a settled order's split, the split settings, the daily
settlement statement and its CSV export, and the reconciliation of the payment ledger
against the provider's statement of a day."""
from __future__ import annotations

from dataclasses import dataclass

from siyu_kit import context
from siyu_kit.errors import NotFound

from services.order.application.finance_ports import LedgerDays, SplitPostings, SplitRecords, SplitSettingsRepository
from services.order.application.provider_ports import ProviderStatements
from services.order.domain import finance
from services.order.domain.split import SplitRecord, SplitSettings



@dataclass
class FinanceUseCases:
    splits: SplitRecords
    postings: SplitPostings
    settings: SplitSettingsRepository
    ledger: LedgerDays
    statements: ProviderStatements

    async def split(self, order_id: str) -> SplitRecord:
        ctx = context.current()
        ctx.require_staff("FINANCE")
        record = await self.splits.get(ctx.merchant_id, order_id)
        if record is None:
            raise NotFound(f"order {order_id} has no split (not settled yet, or not the merchant's)")
        return record

    async def split_settings(self) -> SplitSettings:
        ctx = context.current()
        ctx.require_staff("FINANCE")
        return await self.settings.of_merchant(ctx.merchant_id)

    async def update_split_settings(self, settings: SplitSettings) -> SplitSettings:
        ctx = context.current()
        ctx.require_staff("OWNER")
        return await self.settings.save(ctx.merchant_id, settings)

    async def _statement(self, merchant_id: str, day, postings: list[finance.Posting]) -> finance.Statement:
        start, end = finance.day_bounds(day)
        movements = await self.ledger.between(merchant_id, start, end)
        return finance.statement(day, movements, [p for p in postings if p.day == day])

    async def statement(self, day_text: str) -> finance.Statement:
        ctx = context.current()
        ctx.require_staff("FINANCE")
        day = finance.parse_day(day_text, "day")
        postings = await self.postings.of_days(ctx.merchant_id, day, day)
        return await self._statement(ctx.merchant_id, day, postings)

    async def export(self, from_day: str, to_day: str) -> bytes:
        ctx = context.current()
        ctx.require_staff("FINANCE")
        days = finance.day_range(from_day, to_day)
        postings = await self.postings.of_days(ctx.merchant_id, days[0], days[-1])
        return finance.statements_csv([await self._statement(ctx.merchant_id, d, postings) for d in days])

    async def reconcile(self, day_text: str) -> finance.Reconciliation:
        ctx = context.current()
        ctx.require_staff("FINANCE")
        day = finance.parse_day(day_text, "day")
        start, end = finance.day_bounds(day)
        movements = await self.ledger.between(ctx.merchant_id, start, end)
        rows = await self.statements.statement(ctx.merchant_id, day)
        return finance.reconcile(movements, [finance.ProviderRow(r.kind, r.our_id, r.amount, r.fee) for r in rows])
