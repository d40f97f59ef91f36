"""The order service's part of a member's data export (PIPL Art. 45): the member's orders,
payments and refunds, read for the member service's export job."""
from __future__ import annotations

from typing import Protocol

from siyu_kit import context

# The parts, in the order the document lists them.
PARTS = ("orders", "payments", "refunds")


class MemberRecords(Protocol):
    async def of_member(self, merchant_id: str, member_id: str, part: str) -> list[dict]:
        """The member's records of one part (a name of PARTS), oldest first, as plain JSON
        values: no sealed values, no outbox."""


class OrderDataExport:
    def __init__(self, records: MemberRecords):
        self.records = records

    async def export(self, member_id: str) -> dict[str, list[dict]]:
        merchant_id = context.current().require_merchant()
        return {part: await self.records.of_member(merchant_id, member_id, part) for part in PARTS}
