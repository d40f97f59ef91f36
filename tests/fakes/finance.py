"""In-memory fakes of the settlement, supplier and finance ports (application/finance_ports.py)
and of the provider's profit sharing and statements, for use-case tests without servers."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import date, datetime

from siyu_kit.aggregate import StaleVersion

from tests.fakes.order import FakeOrders
from tests.fakes.store import require_version

from services.order.application.provider_ports import (ShareRequest, ShareResult, ShareReturnRequest,
                                                       ShareReturnResult, StatementRow)
from services.order.domain.finance import Movement, Posting
from services.order.domain.orders import Order, OrderState
from services.order.domain.split import SplitRecord, SplitSettings, SupplyTerms
from services.order.domain.suppliers import Supplier, SupplierLink


@dataclass
class FakeSettleCandidates:
    """Completed, unsettled orders of a FakeOrders, by the time the scan may take them."""
    orders: FakeOrders
    not_before: dict[str, int] = field(default_factory=dict)

    async def due(self, now_ms: int, limit: int) -> list[Order]:
        found = [o for o in self.orders.orders.values()
                 if o.state is OrderState.COMPLETED and o.settled_at is None
                 and self.not_before.get(o.id, int(o.completed_at.timestamp() * 1000)) <= now_ms]
        found.sort(key=lambda o: self.not_before.get(o.id, 0))
        return [copy.deepcopy(o) for o in found[:limit]]

    async def postpone(self, merchant_id: str, order_id: str, until_ms: int, scanned_ms: int) -> None:
        order = self.orders.orders[order_id]
        if self.not_before.get(order_id, int(order.completed_at.timestamp() * 1000)) <= scanned_ms:
            self.not_before[order_id] = until_ms

    async def recheck(self, merchant_id: str, now_ms: int) -> None:
        for order_id, at in list(self.not_before.items()):
            order = self.orders.orders.get(order_id)
            if order is not None and order.merchant_id == merchant_id and at > now_ms:
                self.not_before[order_id] = now_ms + 1


@dataclass
class FakeSplits:
    records: dict[str, SplitRecord] = field(default_factory=dict)
    stale_saves: int = 0

    async def get(self, merchant_id: str, order_id: str) -> SplitRecord | None:
        r = next((r for r in self.records.values() if r.order_id == order_id and r.merchant_id == merchant_id), None)
        return copy.deepcopy(r)

    async def add(self, record: SplitRecord) -> bool:
        record.pull_events()
        if record.id in self.records:
            return False
        self.records[record.id] = copy.deepcopy(record)
        return True

    async def save(self, record: SplitRecord) -> None:
        if not record.pull_events():
            return
        if self.stale_saves:
            self.stale_saves -= 1
            raise StaleVersion("the split changed")
        require_version(self.records.get(record.id), record)
        record.version += 1
        self.records[record.id] = copy.deepcopy(record)

    async def needing_work(self, limit: int) -> list[SplitRecord]:
        return [copy.deepcopy(r) for r in self.records.values() if r.needs_work][:limit]


@dataclass
class FakePostings:
    by_id: dict[str, tuple[str, Posting]] = field(default_factory=dict)

    async def add(self, merchant_id: str, posting: Posting) -> None:
        self.by_id.setdefault(posting.posting_id, (merchant_id, posting))

    async def of_days(self, merchant_id: str, first: date, last: date) -> list[Posting]:
        return [p for m, p in self.by_id.values() if m == merchant_id and first <= p.day <= last]


@dataclass
class FakeSplitSettings:
    by_merchant: dict[str, SplitSettings] = field(default_factory=dict)

    async def of_merchant(self, merchant_id: str) -> SplitSettings:
        return self.by_merchant.get(merchant_id, SplitSettings())

    async def save(self, merchant_id: str, settings: SplitSettings) -> SplitSettings:
        self.by_merchant[merchant_id] = settings
        return settings


@dataclass
class FakeSuppliers:
    by_id: dict[str, Supplier] = field(default_factory=dict)
    keys: dict[tuple[str, str], str] = field(default_factory=dict)

    async def get(self, merchant_id: str, supplier_id: str) -> Supplier | None:
        s = self.by_id.get(supplier_id)
        return copy.deepcopy(s) if s and s.merchant_id == merchant_id else None

    async def by_key(self, merchant_id: str, idempotency_key: str) -> Supplier | None:
        sid = self.keys.get((merchant_id, idempotency_key))
        return await self.get(merchant_id, sid) if sid else None

    async def add(self, supplier: Supplier, idempotency_key: str) -> bool:
        supplier.pull_events()
        if (supplier.merchant_id, idempotency_key) in self.keys:
            return False
        self.keys[(supplier.merchant_id, idempotency_key)] = supplier.id
        self.by_id[supplier.id] = copy.deepcopy(supplier)
        return True

    async def save(self, supplier: Supplier) -> None:
        if not supplier.pull_events():
            return
        require_version(self.by_id.get(supplier.id), supplier)
        supplier.version += 1
        self.by_id[supplier.id] = copy.deepcopy(supplier)

    async def page(self, merchant_id: str, after_id: str, limit: int) -> list[Supplier]:
        return sorted((s for s in self.by_id.values() if s.merchant_id == merchant_id and s.id > after_id),
                      key=lambda s: s.id)[:limit]

    async def among(self, merchant_id: str, supplier_ids) -> dict[str, Supplier]:
        return {i: s for i in supplier_ids if (s := self.by_id.get(i)) and s.merchant_id == merchant_id}


@dataclass
class FakeLinks:
    by_key: dict[tuple[str, str], SupplierLink] = field(default_factory=dict)

    async def put(self, link: SupplierLink) -> None:
        self.by_key[(link.merchant_id, link.sku_id)] = link

    async def remove(self, merchant_id: str, sku_id: str) -> bool:
        return self.by_key.pop((merchant_id, sku_id), None) is not None

    async def page(self, merchant_id: str, supplier_id: str, after_sku: str, limit: int) -> list[SupplierLink]:
        return sorted((x for (m, sku), x in self.by_key.items()
                       if m == merchant_id and (not supplier_id or x.supplier_id == supplier_id) and sku > after_sku),
                      key=lambda x: x.sku_id)[:limit]

    async def terms(self, merchant_id: str, sku_ids) -> dict[str, SupplyTerms]:
        return {s: SupplyTerms(x.supplier_id, x.supply_price) for s in sku_ids
                if (x := self.by_key.get((merchant_id, s)))}


@dataclass
class FakeLedgerDays:
    """Movements by (merchant, time) and each order's account balances."""
    movements: list[tuple[str, datetime, Movement]] = field(default_factory=list)
    balances: dict[str, dict[str, int]] = field(default_factory=dict)

    async def between(self, merchant_id: str, start: datetime, end: datetime) -> list[Movement]:
        return [m for mid, at, m in self.movements if mid == merchant_id and start <= at < end]

    async def order_balances(self, merchant_id: str, order_id: str) -> dict[str, int]:
        return dict(self.balances.get(order_id, {}))


@dataclass
class FakeTransactions:
    txns: dict[str, str] = field(default_factory=dict)

    async def provider_txn_id(self, merchant_id: str, payment_id: str) -> str:
        return self.txns.get(payment_id, "")


@dataclass
class FakeProfitSharing:
    """Answers shares PROCESSING `processing` times, then FINISHED; keeps every call."""
    processing: int = 0
    failing: set[str] = field(default_factory=set)
    shares: list[ShareRequest] = field(default_factory=list)
    returns: list[ShareReturnRequest] = field(default_factory=list)
    unfrozen: list[str] = field(default_factory=list)

    async def share(self, request: ShareRequest) -> ShareResult:
        self.shares.append(request)
        if request.split_id in self.failing:
            raise ConnectionError("the provider is away")
        if self.processing:
            self.processing -= 1
            return ShareResult(state="PROCESSING")
        return ShareResult(state="FINISHED", provider_order_id="wx-" + request.split_id)

    async def return_share(self, request: ShareReturnRequest) -> ShareReturnResult:
        self.returns.append(request)
        return ShareReturnResult(state="SUCCESS")

    async def unfreeze(self, merchant_id: str, provider_txn_id: str, split_id: str) -> ShareResult:
        self.unfrozen.append(split_id)
        return ShareResult(state="FINISHED")


@dataclass
class FakeStatements:
    rows: list[StatementRow] = field(default_factory=list)

    async def statement(self, merchant_id: str, day: date) -> list[StatementRow]:
        return list(self.rows)
