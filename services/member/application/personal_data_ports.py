"""What the data-export use cases need from outside. Implementations live in
services/member/adapters/personal_data_store.py (and the order client there)."""
from __future__ import annotations

from datetime import datetime
from typing import Protocol

from services.member.domain.personal_data import DataExport, Erasure


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


class ErasureStore(Protocol):
    async def start(self, merchant_id: str, member_id: str, now: datetime) -> bool:
        """Marks the member ERASING, ends their sessions (token version) and stores the
        member.erased event with it, in one conditional update; False when the member was
        erasing or erased already (nothing written)."""

    async def get(self, merchant_id: str, member_id: str) -> Erasure | None:
        """The member's erasure; None when the member is unknown or not being erased."""

    async def claim_key(self, merchant_id: str, idempotency_key: str, member_id: str) -> str:
        """Stores the request's key (unique per merchant) for the member unless it is
        stored already; the member whose key it is."""

    async def erase_own_data(self, merchant_id: str, member_id: str) -> None:
        """Deletes or anonymises what the member service keeps about the member (profile
        fields, phone, identities, addresses, SMS challenges), first adding the keyed
        hashes of the phone and unionid to the referral farm guard. Repeats change nothing."""

    async def acknowledge(self, merchant_id: str, member_id: str, service: str) -> Erasure | None:
        """Records one service's acknowledgement and makes the member ERASED once every
        service has (conditional updates; repeats change nothing); None when the member is
        not being erased."""
