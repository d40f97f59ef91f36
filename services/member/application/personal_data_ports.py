"""What the data-export use cases need from outside. Implementations live in
services/member/adapters/personal_data_store.py (and the order client there)."""
from __future__ import annotations

from datetime import datetime
from typing import Protocol

from services.member.domain.personal_data import DataExport


class DataExportStore(Protocol):
    async def add(self, export: DataExport) -> DataExport:
        """Stores a new export; when the member asked with this key before, the one stored
        first (unique merchant, member, key)."""

    async def get(self, merchant_id: str, member_id: str, export_id: str) -> DataExport | None:
        """The member's export, its parts opened; None for another member's or none."""

    async def lease_next(self, holder: str, now: datetime) -> DataExport | None:
        """An export still being gathered whose lease ran out, now leased to `holder`
        (one conditional update: two replicas never hold the same one); None: none due."""

    async def save_part(self, export: DataExport, holder: str, part: str) -> bool:
        """Stores one gathered part (sealed) and the progress, while `holder` still holds
        the lease; False when it lost it."""

    async def expire_due(self, now: datetime, limit: int) -> int:
        """Marks READY exports past their expiry EXPIRED and deletes their documents; how many."""


class MemberDataSource(Protocol):
    async def gather(self, merchant_id: str, member_id: str) -> dict:
        """One service's data about the member, as plain JSON values."""
