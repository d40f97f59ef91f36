"""In-memory stores for members' personal-information rights: data exports (the unique
(merchant, member, key), the lease taken only when it ran out, parts written only by the
lease's holder, a source that can fail) and erasure (the ERASING mark taken once with its
event, acknowledgements, the farm guard; the order side's unpaid orders)."""
from __future__ import annotations

import copy
from datetime import datetime

from siyu_kit import context

from services.member.domain.personal_data import ERASED, ERASING, EXPIRED, GATHERING, LEASE, READY, DataExport, Erasure


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


class FakeErasures:
    """The erasure store in memory: members of a merchant with their personal data, the
    ERASING mark taken once (with its event), acknowledgements, the farm guard."""

    def __init__(self):
        self.members: dict[tuple[str, str], dict] = {}  # (merchant, member) → {state, acks, data, version}
        self.events: list[tuple[str, str]] = []  # (merchant, member) of each member.erased stored
        self.guard: dict[str, str] = {}  # keyed hash → member id
        self.keys: dict[tuple[str, str], str] = {}  # (merchant, idempotency key) → member id
        self.fail_erase = 0

    def add_member(self, merchant_id: str, member_id: str, **data) -> None:
        self.members[(merchant_id, member_id)] = {"state": "", "acks": set(), "data": dict(data), "token_version": 1}

    async def start(self, merchant_id: str, member_id: str, now) -> bool:
        m = self.members.get((merchant_id, member_id))
        if m is None or m["state"]:
            return False
        m["state"], m["token_version"] = ERASING, m["token_version"] + 1
        self.events.append((merchant_id, member_id))
        return True

    async def get(self, merchant_id: str, member_id: str) -> Erasure | None:
        m = self.members.get((merchant_id, member_id))
        return Erasure(member_id, m["state"], frozenset(m["acks"])) if m and m["state"] else None

    async def claim_key(self, merchant_id: str, idempotency_key: str, member_id: str) -> str:
        return self.keys.setdefault((merchant_id, idempotency_key), member_id)

    async def erase_own_data(self, merchant_id: str, member_id: str) -> None:
        if self.fail_erase:
            self.fail_erase -= 1
            raise ConnectionError("the database is away")
        m = self.members[(merchant_id, member_id)]
        for kind in ("phone", "unionid"):
            if m["data"].get(kind):
                self.guard.setdefault(f"{merchant_id}:{kind}:{m['data'][kind]}", member_id)
        m["data"] = {}

    async def acknowledge(self, merchant_id: str, member_id: str, service: str) -> Erasure | None:
        m = self.members.get((merchant_id, member_id))
        if m is None or not m["state"]:
            return None
        m["acks"].add(service)
        if m["state"] == ERASING and Erasure(member_id, ERASING, frozenset(m["acks"])).complete:
            m["state"] = ERASED
        return await self.get(merchant_id, member_id)


class FakeMemberOrders:
    """The order side's look at a member's orders: unpaid ids from FakeOrders, and which
    members' orders were anonymised (how many times)."""

    def __init__(self, orders):
        self.orders = orders
        self.anonymised: list[tuple[str, str]] = []

    async def unpaid_order_ids(self, merchant_id: str, member_id: str) -> list[str]:
        return [o.id for o in self.orders.orders.values()
                if (o.merchant_id, o.member_id, o.state.value) == (merchant_id, member_id, "PENDING_PAYMENT")]

    async def anonymise(self, merchant_id: str, member_id: str) -> int:
        self.anonymised.append((merchant_id, member_id))
        return 1


class FakeAcknowledger:
    def __init__(self):
        self.acks: list[tuple[str, str, str]] = []  # (merchant from the context, member, service)

    async def acknowledge(self, member_id: str, service: str) -> None:
        self.acks.append((context.current().merchant_id, member_id, service))
