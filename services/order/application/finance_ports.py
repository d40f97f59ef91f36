"""What the settlement, supplier and finance use cases need from outside (the provider's
ports are in provider_ports.py; orders and order settings in ports.py)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Protocol, Sequence

from services.order.domain.finance import Movement, Posting
from services.order.domain.orders import Order
from services.order.domain.split import SplitRecord, SplitSettings, SupplyTerms
from services.order.domain.suppliers import Supplier, SupplierLink


class SettleCandidates(Protocol):
    async def due(self, now_ms: int, limit: int) -> list[Order]:
        """Completed, unsettled orders whose earliest settlement time has come, across
        merchants, oldest first, read whole (the settle job saves them on their version)."""
        ...

    async def postpone(self, merchant_id: str, order_id: str, until_ms: int, scanned_ms: int) -> None:
        """The order's window is still open: look at it again from `until_ms` — unless its
        scan time moved past `scanned_ms` (the scan's time) meanwhile: a recheck came later."""
        ...

    async def recheck(self, merchant_id: str, now_ms: int) -> None:
        """The merchant shortened its after-sales window: every open order postponed past
        `now_ms` is looked at again from just after it (a scan made up to `now_ms` cannot
        postpone it again) and postponed to its new due time if it is not due yet."""
        ...


class SupplierRepository(Protocol):
    async def get(self, merchant_id: str, supplier_id: str) -> Supplier | None: ...

    async def by_key(self, merchant_id: str, idempotency_key: str) -> Supplier | None: ...

    async def add(self, supplier: Supplier, idempotency_key: str) -> bool:
        """False when the idempotency key made a supplier already."""
        ...

    async def save(self, supplier: Supplier) -> None:
        """On the version read; StaleVersion when another write came first."""
        ...

    async def page(self, merchant_id: str, after_id: str, limit: int) -> list[Supplier]:
        """Oldest first (ids sort by creation); `after_id`: the last of the previous page."""
        ...

    async def among(self, merchant_id: str, supplier_ids: Sequence[str]) -> dict[str, Supplier]: ...


class SupplierLinks(Protocol):
    async def put(self, link: SupplierLink) -> None:
        """Links the SKU (replacing its link)."""
        ...

    async def remove(self, merchant_id: str, sku_id: str) -> bool:
        """False when the SKU had no link."""
        ...

    async def page(self, merchant_id: str, supplier_id: str, after_sku: str, limit: int) -> list[SupplierLink]: ...

    async def terms(self, merchant_id: str, sku_ids: Sequence[str]) -> dict[str, SupplyTerms]:
        """The current link of each SKU that has one."""
        ...


class SplitRecords(Protocol):
    async def get(self, merchant_id: str, order_id: str) -> SplitRecord | None: ...

    async def add(self, record: SplitRecord) -> bool:
        """False when the order's split exists already (one per order)."""
        ...

    async def save(self, record: SplitRecord) -> None:
        """On the version read; StaleVersion when another write came first."""
        ...

    async def needing_work(self, limit: int) -> list[SplitRecord]:
        """Splits with a share or a share return the provider has not finished, across merchants."""
        ...


class SplitPostings(Protocol):
    async def add(self, merchant_id: str, posting: Posting) -> None:
        """Idempotent by posting id."""
        ...

    async def of_days(self, merchant_id: str, first: date, last: date) -> list[Posting]: ...


class SplitSettingsRepository(Protocol):
    async def of_merchant(self, merchant_id: str) -> SplitSettings: ...

    async def save(self, merchant_id: str, settings: SplitSettings) -> SplitSettings: ...


class LedgerDays(Protocol):
    async def between(self, merchant_id: str, start: datetime, end: datetime) -> list[Movement]:
        """The merchant's payment-ledger entries recorded in [start, end)."""
        ...

    async def order_balances(self, merchant_id: str, order_id: str) -> dict[str, int]:
        """Debits minus credits per account of the order's entries."""
        ...


class PaidTransactions(Protocol):
    async def provider_txn_id(self, merchant_id: str, payment_id: str) -> str:
        """The provider's id of the payment's transaction; "" when it has none."""
        ...
