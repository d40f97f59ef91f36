"""Staff read and change the merchant's order settings."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from siyu_kit import context, retry
from siyu_kit.aggregate import StaleVersion
from siyu_kit.errors import Conflict, Violations
from siyu_kit.money import DEFAULT_CURRENCY
from siyu_kit.protos import now_ms

from services.order.application.finance_ports import SettleCandidates
from services.order.application.ports import SettingsRepository
from services.order.domain.settings import OrderSettings, violations

CONFLICT = "the order settings changed since they were read; read them again"


@dataclass
class SettingsUseCases:
    settings: SettingsRepository
    # Orders waiting for their after-sales window to close; a shorter window applies to them
    # at once, as it does to the refunds they may still take.
    settle_candidates: SettleCandidates
    clock_ms: Callable[[], int] = now_ms

    async def get(self) -> OrderSettings:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        return await self.settings.of_merchant(ctx.merchant_id, True)

    async def update(self, wanted: OrderSettings, currencies: dict[str, str], expected_version: int) -> OrderSettings:
        """`currencies`: the currency each money field came with ("" when unset). Without
        an expected version, a change that lost a race is made again on what won."""
        ctx = context.current()
        ctx.require_staff("OWNER")
        v = Violations()
        for field, description in violations(wanted):
            v.add(field, description)
        for field, currency in currencies.items():
            v.check(currency in ("", DEFAULT_CURRENCY), field, f"must be {DEFAULT_CURRENCY}")
        v.check(expected_version >= 0, "expected_version", "must not be negative")
        v.raise_if_any()

        async def attempt() -> tuple[OrderSettings, OrderSettings]:
            current = await self.settings.of_merchant(ctx.merchant_id, True)
            if expected_version and expected_version != current.version:
                raise Conflict(CONFLICT, reason="VERSION_CONFLICT")
            try:
                saved = await self.settings.save(ctx.merchant_id, replace(wanted, version=current.version),
                                                self.clock_ms())
            except StaleVersion:
                if expected_version:
                    raise Conflict(CONFLICT, reason="VERSION_CONFLICT") from None
                raise
            return current, saved

        before, saved = await retry.on_conflict(attempt, gave_up="the order settings changed concurrently; try again")
        if saved.after_sales_days < before.after_sales_days:
            await self.settle_candidates.recheck(ctx.merchant_id, self.clock_ms())
        return saved
