"""In-memory check-ins and check-in settings: one check-in per merchant, member and day
(a second add answers False, as the unique `_id` does), events kept as stored, and each
call yielding to the event loop first so concurrent callers interleave."""
from __future__ import annotations

import asyncio
import copy
from datetime import date

from siyu_kit.protos import epoch_ms

from services.member.domain.checkin import CheckIn, CheckInSettings, check_in_id


class FakeCheckIns:
    def __init__(self):
        self.items: dict[str, CheckIn] = {}
        self.events: list = []
        self.lose_payment_marks = 0  # that many mark_paid calls are lost (a crash before them)

    async def get(self, merchant_id: str, member_id: str, day: date) -> CheckIn | None:
        await asyncio.sleep(0)
        found = self.items.get(check_in_id(merchant_id, member_id, day))
        return copy.deepcopy(found) if found else None

    async def add(self, check_in: CheckIn) -> bool:
        await asyncio.sleep(0)
        if check_in.id in self.items:
            return False
        events = check_in.pull_events()
        self.items[check_in.id] = copy.deepcopy(check_in)
        self.events.extend(events)
        return True

    async def mark_paid(self, check_in: CheckIn) -> None:
        await asyncio.sleep(0)
        if self.lose_payment_marks:
            self.lose_payment_marks -= 1
            return
        self.items[check_in.id].paid = True

    async def between(self, merchant_id: str, member_id: str, first: date, last: date) -> list[CheckIn]:
        return sorted((copy.deepcopy(c) for c in self.items.values()
                       if (c.merchant_id, c.member_id) == (merchant_id, member_id) and first <= c.day <= last),
                      key=lambda c: c.day)

    async def unpaid(self, before_ms: int, limit: int) -> list[CheckIn]:
        return [copy.deepcopy(c) for c in self.items.values()
                if not c.paid and epoch_ms(c.checked_in_at) < before_ms][:limit]


class FakeCheckInSettings:
    def __init__(self):
        self.items: dict[str, tuple[CheckInSettings, int]] = {}

    async def get(self, merchant_id: str) -> tuple[CheckInSettings, int]:
        return self.items.get(merchant_id, (CheckInSettings(), 0))

    async def put(self, merchant_id: str, settings: CheckInSettings, expected_version: int) -> int | None:
        if self.items.get(merchant_id, (None, 0))[1] != expected_version:
            return None
        self.items[merchant_id] = (settings, expected_version + 1)
        return expected_version + 1
