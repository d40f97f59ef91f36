"""In-memory data exports for the export use cases: the unique (merchant, member, key),
the lease taken only when it ran out, parts written only by the lease's holder, and a
source that can fail once."""
from __future__ import annotations

import copy
from datetime import datetime

from services.member.domain.personal_data import EXPIRED, GATHERING, LEASE, READY, DataExport


class FakeDataExports:
    def __init__(self):
        self.items: dict[str, DataExport] = {}
        self.leases: dict[str, tuple[str, datetime]] = {}  # export id → (holder, until)

    async def add(self, export: DataExport) -> DataExport:
        for e in self.items.values():
            if (e.merchant_id, e.member_id, e.idempotency_key) == (export.merchant_id, export.member_id,
                                                                    export.idempotency_key):
                return copy.deepcopy(e)
        self.items[export.id] = copy.deepcopy(export)
        return copy.deepcopy(export)

    async def get(self, merchant_id: str, member_id: str, export_id: str) -> DataExport | None:
        e = self.items.get(export_id)
        return copy.deepcopy(e) if e and (e.merchant_id, e.member_id) == (merchant_id, member_id) else None

    async def lease_next(self, holder: str, now: datetime) -> DataExport | None:
        for e in self.items.values():
            lease = self.leases.get(e.id)
            if e.state == GATHERING and (lease is None or lease[1] < now):
                self.leases[e.id] = (holder, now + LEASE)
                return copy.deepcopy(e)
        return None

    async def save_part(self, export: DataExport, holder: str, part: str) -> bool:
        stored = self.items[export.id]
        if stored.state != GATHERING or self.leases.get(export.id, ("",))[0] != holder:
            return False
        stored.parts[part] = export.parts[part]
        stored.done, stored.state = export.done, export.state
        stored.ready_at, stored.expires_at = export.ready_at, export.expires_at
        if export.state == READY:
            self.leases.pop(export.id, None)
        return True

    async def expire_due(self, now: datetime, limit: int) -> int:
        due = [e for e in self.items.values() if e.state == READY and e.expires_at <= now][:limit]
        for e in due:
            e.state, e.parts = EXPIRED, {}
        return len(due)


class FakeSource:
    """One service's part: what it answers for each member, failing `fail` times first."""

    def __init__(self, data: dict | None = None, fail: int = 0):
        self.data = data or {}
        self.fail = fail
        self.calls: list[tuple[str, str]] = []

    async def gather(self, merchant_id: str, member_id: str) -> dict:
        self.calls.append((merchant_id, member_id))
        if self.fail:
            self.fail -= 1
            raise ConnectionError("the service is down")
        return {"member_id": member_id, **self.data}
