"""The catalog's part of a member's data export (PIPL Art. 45): what it keeps about a
member — their flash-sale quotas and the flash-sale reservations held for them."""
from __future__ import annotations

from typing import Protocol

from siyu_kit import context

PARTS = ("flash_sale_quotas", "flash_sale_reservations")


class MemberRecords(Protocol):
    async def of_member(self, merchant_id: str, member_id: str, part: str) -> list[dict]:
        """The member's records of one part (a name of PARTS) as plain JSON values."""


class CatalogDataExport:
    def __init__(self, records: MemberRecords):
        self.records = records

    async def export(self, member_id: str) -> dict[str, list[dict]]:
        merchant_id = context.current().require_merchant()
        return {part: await self.records.of_member(merchant_id, member_id, part) for part in PARTS}
