"""Staff read and change the merchant's order settings."""
from __future__ import annotations

from dataclasses import dataclass, replace

from siyu_kit import context
from siyu_kit.db import run_sync
from siyu_kit.errors import Conflict, Violations
from siyu_kit.money import DEFAULT_CURRENCY
from siyu_kit.protos import now_ms

from services.order.adapters.repositories import Settings
from services.order.domain.settings import OrderSettings, violations

CONFLICT = "the order settings changed since they were read; read them again"


@dataclass
class SettingsUseCases:
    settings: Settings

    async def get(self) -> OrderSettings:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        return await run_sync(self.settings.of_merchant, ctx.merchant_id, True)

    async def update(self, wanted: OrderSettings, currencies: dict[str, str], expected_version: int) -> OrderSettings:
        """`currencies`: the currency each money field came with ("" when unset)."""
        ctx = context.current()
        ctx.require_staff("OWNER")
        v = Violations()
        for field, description in violations(wanted):
            v.add(field, description)
        for field, currency in currencies.items():
            v.check(currency in ("", DEFAULT_CURRENCY), field, f"must be {DEFAULT_CURRENCY}")
        v.check(expected_version >= 0, "expected_version", "must not be negative")
        v.raise_if_any()
        for _ in range(3):
            current = await run_sync(self.settings.of_merchant, ctx.merchant_id, True)
            if expected_version and expected_version != current.version:
                raise Conflict(CONFLICT, reason="VERSION_MISMATCH")
            saved = await run_sync(self.settings.save, ctx.merchant_id, replace(wanted, version=0),
                                   current.version, now_ms())
            if saved is not None:
                return saved
            if expected_version:
                raise Conflict(CONFLICT, reason="VERSION_MISMATCH")
        raise Conflict("the order settings changed concurrently; try again")
