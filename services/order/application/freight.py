"""Staff read and replace the merchant's freight template."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Callable

from siyu_kit import context, retry
from siyu_kit.aggregate import StaleVersion
from siyu_kit.errors import Conflict, Violations
from siyu_kit.money import DEFAULT_CURRENCY
from siyu_kit.protos import to_storage_precision, utcnow

from services.order.application.ports import FreightTemplateRepository
from services.order.domain.freight import FreightTemplate, violations

CONFLICT = "the freight template changed since it was read; read it again"


@dataclass
class FreightUseCases:
    templates: FreightTemplateRepository
    clock: Callable[[], datetime] = utcnow

    async def get(self) -> FreightTemplate | None:
        """The merchant's template; None while it has none (the flat order settings apply)."""
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        return await self.templates.of_merchant(ctx.merchant_id, True)

    async def put(self, wanted: FreightTemplate, currencies: dict[str, str], expected_version: int) -> FreightTemplate:
        """Replaces the template as a whole. `currencies`: the currency each money field came
        with ("" when unset). Without an expected version, a change that lost a race is made
        again on what won."""
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        for field, description in violations(wanted):
            v.add(field, description)
        for field, currency in currencies.items():
            v.check(currency in ("", DEFAULT_CURRENCY), field, f"must be {DEFAULT_CURRENCY}")
        v.check(expected_version >= 0, "expected_version", "must not be negative")
        v.raise_if_any()

        async def attempt() -> FreightTemplate:
            now = to_storage_precision(self.clock())
            current = await self.templates.of_merchant(ctx.merchant_id, True)
            if expected_version and expected_version != (current.version if current else 0):
                raise Conflict(CONFLICT, reason="VERSION_CONFLICT")
            try:
                if current is None:
                    new = replace(wanted, merchant_id=ctx.merchant_id, version=1, updated_at=now)
                    if await self.templates.add(new):
                        return new
                    raise StaleVersion("a freight template was added meanwhile")
                current.replace_with(wanted, now)
                await self.templates.save(current)
                return current
            except StaleVersion:
                if expected_version:
                    raise Conflict(CONFLICT, reason="VERSION_CONFLICT") from None
                raise

        return await retry.on_conflict(attempt, gave_up="the freight template changed concurrently; try again")
