"""What the check-in use cases need from outside (besides the points ledger, the members
and the merchants of application/ports.py). Every method is async; implementations live
in the adapters (adapters/checkin_store.py) and are wired in at start-up."""
from __future__ import annotations

from datetime import date
from typing import Protocol

from services.member.domain.checkin import CheckIn, CheckInSettings


class CheckInStore(Protocol):
    async def get(self, merchant_id: str, member_id: str, day: date) -> CheckIn | None: ...

    async def add(self, check_in: CheckIn) -> bool:
        """Stores the check-in with its events; False when the member has one for that day
        already (the unique key: nothing is written then)."""
        ...

    async def mark_paid(self, check_in: CheckIn) -> None:
        """Notes that the check-in's points movement is written."""
        ...

    async def between(self, merchant_id: str, member_id: str, first: date, last: date) -> list[CheckIn]:
        """The member's check-ins from `first` to `last` (both included)."""
        ...

    async def unpaid(self, before_ms: int, limit: int) -> list[CheckIn]:
        """Check-ins of any merchant made before `before_ms` whose points are not noted
        as paid (a process died between the two writes)."""
        ...


class CheckInSettingsStore(Protocol):
    async def get(self, merchant_id: str) -> tuple[CheckInSettings, int]:
        """The merchant's settings and their version (the defaults and 0 when never set)."""
        ...

    async def put(self, merchant_id: str, settings: CheckInSettings, expected_version: int) -> int | None:
        """Replaces the settings when their version is still `expected_version`; the new
        version, or None when another change came first."""
        ...
