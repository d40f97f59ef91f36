"""In-memory fakes of the catalog's ports, for use-case tests without servers.

Each fake keeps what it stores in dicts and honours what the real repository guarantees:
a StockChange or a pool take applies whole or not at all under its guard, a reservation
save is a compare-and-set on its version (StaleVersion when it lost), and the events
saved with each reservation are kept in `events` for tests to assert."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from siyu_kit import context
from siyu_kit.aggregate import StaleVersion

from tests.fakes.callers import acting

from services.catalog.application.categories import CategoryUseCases
from services.catalog.application.flash_sales import FlashSaleUseCases
from services.catalog.application.inventory import InventoryUseCases
from services.catalog.application.ledger import Ledger
from services.catalog.application.pools import Pools
from services.catalog.application.ports import ProductFilter, SaleFilter, SkuFilter
from services.catalog.application.products import ProductUseCases
from services.catalog.application.staff_lists import StaffLists
from services.catalog.application.stock import StockUseCases
from services.catalog.domain import flash_sales as flash_rules, stock as rules
from services.catalog.domain.flash_sales import Applied, FlashSale, PoolCounters, PoolHold, SaleHolds
from services.catalog.domain.listing import Key, Sort
from services.catalog.domain.reservations import Reservation
from services.catalog.domain.stock import Movement, Stock, StockChange

T0 = datetime(2026, 6, 18, 12, tzinfo=timezone.utc)


class Clock:
    def __init__(self, now: datetime = T0):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# ---- products and categories

class FakeProducts:
    def __init__(self):
        self.docs: dict[str, dict] = {}

    def _stored(self, merchant_id: str, product_id: str) -> dict | None:
        doc = self.docs.get(product_id)
        return doc if doc is not None and doc["merchant_id"] == merchant_id else None

    async def by_code(self, merchant_id: str, code: str) -> dict | None:
        return next((copy.deepcopy(d) for d in self.docs.values()
                     if d["merchant_id"] == merchant_id and d["code"] == code), None)

    async def get(self, merchant_id: str, product_id: str) -> dict | None:
        return copy.deepcopy(self._stored(merchant_id, product_id))

    async def get_many(self, merchant_id: str, product_ids: list[str]) -> list[dict]:
        return [copy.deepcopy(d) for i in product_ids if (d := self._stored(merchant_id, i))]

    async def add(self, fields: dict) -> bool:
        if fields["id"] in self.docs or await self.by_code(fields["merchant_id"], fields["code"]):
            return False
        doc = {"_id": fields["id"], **{k: v for k, v in fields.items() if k != "id"}}
        self.docs[doc["_id"]] = copy.deepcopy(doc)
        return True

    async def update(self, merchant_id: str, product_id: str, version: int, fields: dict) -> bool:
        doc = self._stored(merchant_id, product_id)
        if doc is None or doc["version"] != version:
            return False
        doc.update(copy.deepcopy(fields))
        doc["version"] += 1
        return True

    async def page(self, merchant_id: str, where: ProductFilter, sort: Sort, after: Key | None,
                   limit: int) -> list[dict]:
        def matches(d: dict) -> bool:
            return (d["merchant_id"] == merchant_id and (not where.status or d["status"] == where.status)
                    and set(where.terms) <= set(d.get("search_terms") or [])
                    and (not where.category_id or where.category_id in (d.get("category_path") or []))
                    and (not where.tag or where.tag in (d.get("tags") or []))
                    and (where.min_price is None or d["min_price"] >= where.min_price)
                    and (where.max_price is None or d["min_price"] <= where.max_price))

        def key(d: dict):
            return (d["_id"],) if sort.field == "_id" else (int(d.get(sort.field) or 0), d["_id"])

        docs = sorted((d for d in self.docs.values() if matches(d)), key=key, reverse=sort.descending)
        if after is not None:
            mark = (after.product_id,) if sort.field == "_id" else (after.value, after.product_id)
            docs = [d for d in docs if (key(d) < mark if sort.descending else key(d) > mark)]
        return [copy.deepcopy(d) for d in docs[:limit]]


class FakeCategories:
    def __init__(self):
        self.docs: dict[str, dict] = {}

    async def get(self, merchant_id: str, category_id: str) -> dict | None:
        doc = self.docs.get(category_id)
        return copy.deepcopy(doc) if doc and doc["merchant_id"] == merchant_id else None

    async def all_of(self, merchant_id: str) -> list[dict]:
        return [copy.deepcopy(d) for d in self.docs.values() if d["merchant_id"] == merchant_id]

    async def add(self, fields: dict) -> bool:
        if await self.name_taken(fields["merchant_id"], fields["parent_id"], fields["name"], ""):
            return False
        self.docs[fields["id"]] = {"_id": fields["id"], **{k: v for k, v in fields.items() if k != "id"}}
        return True

    async def name_taken(self, merchant_id: str, parent_id: str, name: str, other_than: str) -> bool:
        return any(d["merchant_id"] == merchant_id and d["parent_id"] == parent_id and d["name"] == name
                   and d["_id"] != other_than for d in self.docs.values())

    async def update(self, merchant_id: str, category_id: str, version: int, fields: dict) -> dict | None:
        doc = self.docs.get(category_id)
        if doc is None or doc["merchant_id"] != merchant_id or doc["version"] != version:
            return None
        doc.update(fields)
        doc["version"] += 1
        return copy.deepcopy(doc)

    async def page(self, merchant_id: str, parent_id: str | None, after_id: str, limit: int) -> list[dict]:
        found = sorted((d for d in self.docs.values() if d["merchant_id"] == merchant_id
                        and (parent_id is None or d["parent_id"] == parent_id) and d["_id"] > after_id),
                       key=lambda d: d["_id"])
        return [copy.deepcopy(d) for d in found[:limit]]


# ---- stock and its ledger

@dataclass
class StockRecord:
    merchant_id: str
    product_id: str
    on_hand: int
    reserved: int
    available: int
    books: dict[str, dict[str, int]] = field(default_factory=lambda: {rules.HOLDS: {}, rules.ADJUSTMENTS: {},
                                                                       rules.RETURNS: {}})
    pending: dict[str, tuple[Movement, int]] = field(default_factory=dict)
    pool_sync: dict[str, Applied] = field(default_factory=dict)


class FakeStock:
    def __init__(self, clock: Clock):
        self.records: dict[str, StockRecord] = {}
        self.clock = clock
        self.writes = 0  # conditional updates that moved the counters
        self.pages = 0  # staff list pages read

    def _record(self, merchant_id: str, sku_id: str) -> StockRecord | None:
        record = self.records.get(sku_id)
        return record if record is not None and record.merchant_id == merchant_id else None

    def _stock(self, sku_id: str, record: StockRecord) -> Stock:
        return Stock(sku_id, record.merchant_id, record.product_id, record.on_hand, record.reserved, record.available,
                     holds=dict(record.books[rules.HOLDS]), adjustments=dict(record.books[rules.ADJUSTMENTS]),
                     owed=tuple(record.pending.values()))

    def levels(self, sku_id: str) -> tuple[int, int, int]:
        r = self.records[sku_id]
        return r.on_hand, r.reserved, r.available

    def _now_ms(self) -> int:
        return int(self.clock().timestamp() * 1000)

    async def add(self, stock: Stock) -> bool:
        if stock.sku_id in self.records:
            return False
        record = StockRecord(stock.merchant_id, stock.product_id, stock.on_hand, stock.reserved, stock.available)
        initial = Movement(rules.INITIAL, stock.sku_id, stock.on_hand)
        record.pending[initial.id] = (initial, self._now_ms())
        self.records[stock.sku_id] = record
        return True

    async def get(self, merchant_id: str, sku_id: str) -> Stock | None:
        record = self._record(merchant_id, sku_id)
        return self._stock(sku_id, record) if record else None

    async def get_many(self, merchant_id: str, sku_ids: list[str]) -> list[Stock]:
        return [self._stock(s, r) for s in sku_ids if (r := self._record(merchant_id, s))]

    def _apply(self, merchant_id: str, change: StockChange) -> StockRecord | None:
        record = self._record(merchant_id, change.sku_id)
        if record is None or record.available < change.min_available:
            return None
        mark = change.mark
        book = record.books[mark.book]
        if (mark.key in book) if mark.before is None else (book.get(mark.key) != mark.before):
            return None
        d = change.deltas
        record.on_hand += d.on_hand
        record.reserved += d.reserved
        record.available += d.available
        if mark.after is None:
            del book[mark.key]
        else:
            book[mark.key] = mark.after
        if change.movement.kind == rules.POOL_OUT:
            record.pool_sync[mark.key] = Applied(0, 0)
        record.pending[change.movement.id] = (change.movement, self._now_ms())
        self.writes += 1
        return record

    async def apply(self, merchant_id: str, change: StockChange) -> bool:
        return self._apply(merchant_id, change) is not None

    async def apply_and_read(self, merchant_id: str, change: StockChange) -> Stock | None:
        record = self._apply(merchant_id, change)
        return self._stock(change.sku_id, record) if record else None

    async def holds(self, merchant_id: str, sku_id: str, key: str) -> bool:
        record = self._record(merchant_id, sku_id)
        return record is not None and key in record.books[rules.HOLDS]

    async def owing(self, limit: int) -> list[Stock]:
        return [self._stock(s, r) for s, r in self.records.items() if r.pending][:limit]

    async def page(self, merchant_id: str, where: SkuFilter, after_sku_id: str, descending: bool,
                   limit: int) -> list[Stock]:
        self.pages += 1
        found = sorted((s for s, r in self.records.items() if r.merchant_id == merchant_id
                        and (not where.product_id or r.product_id == where.product_id)
                        and (where.max_available is None or r.available <= where.max_available)
                        and (not after_sku_id or (s < after_sku_id if descending else s > after_sku_id))),
                       reverse=descending)
        return [self._stock(s, self.records[s]) for s in found[:limit]]


class FakeLedger:
    def __init__(self, stock: FakeStock, products: FakeProducts, clock: Clock):
        self.stock = stock
        self.products = products
        self.clock = clock
        self.movements: dict[str, dict] = {}

    async def record(self, merchant_id: str, movement: Movement, at_ms: int | None = None) -> bool:
        fresh = movement.id not in self.movements
        if fresh:
            d = movement.deltas
            self.movements[movement.id] = {
                "_id": movement.id, "merchant_id": merchant_id, "sku_id": movement.sku_id, "kind": movement.kind,
                "reference": movement.reference, "reason": movement.reason, "on_hand_delta": d.on_hand,
                "reserved_delta": d.reserved, "available_delta": d.available,
                "at_ms": at_ms if at_ms is not None else int(self.clock().timestamp() * 1000)}
            self.movements[movement.id]["at"] = datetime.fromtimestamp(self.movements[movement.id]["at_ms"] / 1000,
                                                                      timezone.utc)
        record = self.stock.records.get(movement.sku_id)
        if record is not None:
            record.pending.pop(movement.id, None)
        return fresh

    async def movements_of(self, merchant_id: str, sku_id: str) -> list[dict]:
        return [m for m in self.movements.values() if m["merchant_id"] == merchant_id and m["sku_id"] == sku_id]

    async def add_sales(self, merchant_id: str, product_id: str, quantity: int) -> None:
        doc = self.products.docs.get(product_id)
        if doc is not None and doc["merchant_id"] == merchant_id:
            doc["sales"] = doc.get("sales", 0) + quantity

    def kinds(self, sku_id: str) -> list[str]:
        return sorted(m["kind"] for m in self.movements.values() if m["sku_id"] == sku_id)


# ---- reservations

class FakeReservations:
    def __init__(self):
        self.stored: dict[str, Reservation] = {}
        # (reservation id, event) for every event saved, in order.
        self.events: list[tuple[str, object]] = []
        # The next this many saves find another writer came first.
        self.conflicts = 0
        self.saves = 0

    def _copy(self, reservation: Reservation) -> Reservation:
        stored = copy.deepcopy(reservation)
        stored.__dict__.pop("_pending_events", None)
        return stored

    async def get(self, merchant_id: str, reservation_id: str) -> Reservation | None:
        stored = self.stored.get(reservation_id)
        return self._copy(stored) if stored is not None and stored.merchant_id == merchant_id else None

    async def add(self, reservation: Reservation) -> bool:
        if reservation.id in self.stored:
            return False
        self.events += [(reservation.id, e) for e in reservation.pull_events()]
        self.stored[reservation.id] = self._copy(reservation)
        return True

    async def save(self, reservation: Reservation) -> None:
        stored = self.stored[reservation.id]
        if self.conflicts:
            self.conflicts -= 1
            stored.version += 1  # another writer, changing nothing the test looks at
        if stored.version != reservation.version:
            raise StaleVersion(reservation.id)
        events = reservation.pull_events()
        self.saves += 1
        reservation.version += 1
        self.events += [(reservation.id, e) for e in events]
        self.stored[reservation.id] = self._copy(reservation)

    async def mark_settled(self, reservation: Reservation) -> None:
        stored = self.stored.get(reservation.id)
        if stored is not None:
            stored.settled = True

    async def expired(self, now: datetime, limit: int, after_id: str = "") -> list[Reservation]:
        due = sorted((r for r in self.stored.values()
                      if r.state == rules.RESERVED and r.expires_at <= now and r.id > after_id), key=lambda r: r.id)
        return [self._copy(r) for r in due[:limit]]

    async def unsettled(self, before: datetime, limit: int) -> list[Reservation]:
        return [self._copy(r) for r in self.stored.values()
                if r.state != rules.RESERVED and not r.settled][:limit]

    def event_names(self, reservation_id: str) -> list[str]:
        return [type(e).__name__ for rid, e in self.events if rid == reservation_id]


# ---- flash sales

class FakeFlashSales:
    def __init__(self, stock: FakeStock):
        self.stock = stock
        self.sales: dict[str, FlashSale] = {}
        self.unsynced_ids: set[str] = set()
        self.settled: set[str] = set()  # sales the job no longer scans
        self.quotas: dict[str, dict[str, int]] = {}  # "<sale>:<member>" → key → quantity

    def _sale(self, merchant_id: str, sale_id: str) -> FlashSale | None:
        sale = self.sales.get(sale_id)
        return sale if sale is not None and sale.merchant_id == merchant_id else None

    def _copy(self, sale: FlashSale) -> FlashSale:
        return replace(sale, holds={})

    async def add(self, sale: FlashSale) -> bool:
        if any(s.merchant_id == sale.merchant_id and s.idempotency_key == sale.idempotency_key
               for s in self.sales.values()):
            return False
        self.sales[sale.id] = replace(sale, holds={})
        return True

    async def by_key(self, merchant_id: str, key: str) -> FlashSale | None:
        return next((self._copy(s) for s in self.sales.values()
                     if s.merchant_id == merchant_id and s.idempotency_key == key), None)

    async def get(self, merchant_id: str, sale_id: str) -> FlashSale | None:
        sale = self._sale(merchant_id, sale_id)
        return self._copy(sale) if sale else None

    async def mark_pooled(self, merchant_id: str, sale_id: str) -> None:
        sale = self._sale(merchant_id, sale_id)
        if sale is not None and not sale.pooled:
            sale.pooled, sale.version = True, sale.version + 1

    async def discard(self, merchant_id: str, sale_id: str) -> None:
        sale = self._sale(merchant_id, sale_id)
        if sale is not None and not sale.pooled:
            del self.sales[sale_id]

    async def page(self, merchant_id: str, *, live_session_id: str, after_key: str, ends_after: datetime,
                   limit: int, product_id: str = "") -> list[FlashSale]:
        found = sorted((s for s in self.sales.values() if s.merchant_id == merchant_id and s.pooled
                        and s.kind == "FLASH_SALE" and s.ends_at > ends_after and (not live_session_id or s.live_session_id == live_session_id)
                        and (not product_id or s.product_id == product_id)
                        and s.sort_key > after_key), key=lambda s: s.sort_key)
        return [self._copy(s) for s in found[:limit]]

    async def staff_page(self, merchant_id: str, where: SaleFilter, after_key: str, descending: bool,
                         limit: int) -> list[FlashSale]:
        def wanted(s: FlashSale) -> bool:
            return (s.merchant_id == merchant_id and s.pooled and s.kind == "FLASH_SALE"
                    and (not where.product_id or s.product_id == where.product_id)
                    and (not where.key_from or s.sort_key >= where.key_from)
                    and (not where.key_before or s.sort_key < where.key_before)
                    and (where.ends_after is None or s.ends_at > where.ends_after)
                    and (where.ends_by is None or s.ends_at <= where.ends_by)
                    and (not after_key or (s.sort_key < after_key if descending else s.sort_key > after_key)))
        found = sorted((s for s in self.sales.values() if wanted(s)), key=lambda s: s.sort_key, reverse=descending)
        return [self._copy(s) for s in found[:limit]]

    async def unpooled(self, created_before: datetime, limit: int) -> list[FlashSale]:
        return [self._copy(s) for s in self.sales.values() if not s.pooled and s.created_at <= created_before][:limit]

    async def ended_with_units(self, now: datetime, limit: int) -> list[FlashSale]:
        return [self._copy(s) for s in self.sales.values()
                if s.id not in self.settled and s.pooled and s.ends_at <= now and s.available > 0][:limit]

    async def settle_ended(self, now: datetime) -> int:
        done = [s.id for s in self.sales.values() if s.id not in self.settled and s.pooled and s.ends_at <= now
                and s.available == 0 and s.reserved == 0]
        self.settled.update(done)
        return len(done)

    async def unsynced(self, limit: int) -> list[tuple[str, str]]:
        return [(self.sales[i].merchant_id, i) for i in sorted(self.unsynced_ids)][:limit]

    async def holding(self, after_id: str, limit: int) -> list[SaleHolds]:
        found = sorted((s for s in self.sales.values()
                        if s.id not in self.settled and s.pooled and s.reserved > 0 and s.id > after_id),
                       key=lambda s: s.id)
        return [SaleHolds(s.id, s.merchant_id, dict(s.holds)) for s in found[:limit]]

    def _move(self, sale: FlashSale, key: str, hold: PoolHold) -> None:
        sale.available -= hold.quantity
        sale.reserved += hold.quantity
        sale.holds[key] = hold
        sale.version += 1

    async def take(self, merchant_id: str, sale_id: str, key: str, hold: PoolHold, now: datetime,
                   kind: str = "FLASH_SALE") -> FlashSale | None:
        sale = self._sale(merchant_id, sale_id)
        if sale is None or not sale.pooled or sale.kind != kind or sale.available < hold.quantity or not sale.starts_at <= now \
                or not now < sale.ends_at or key in sale.holds:
            return None
        self._move(sale, key, hold)
        return self._copy(sale)

    async def take_again(self, merchant_id: str, sale_id: str, key: str, hold: PoolHold) -> bool:
        sale = self._sale(merchant_id, sale_id)
        if sale is None or not sale.pooled or sale.available < hold.quantity or key in sale.holds:
            return False
        self._move(sale, key, hold)
        return True

    async def hold_of(self, merchant_id: str, sale_id: str, key: str) -> PoolHold | None:
        sale = self._sale(merchant_id, sale_id)
        return sale.holds.get(key) if sale else None

    def _unhold(self, merchant_id: str, sale_id: str, key: str, quantity: int) -> FlashSale | None:
        sale = self._sale(merchant_id, sale_id)
        if sale is None or key not in sale.holds or sale.holds[key].quantity != quantity:
            return None
        del sale.holds[key]
        sale.reserved -= quantity
        sale.version += 1
        return sale

    async def release(self, merchant_id: str, sale_id: str, key: str, quantity: int) -> bool:
        sale = self._unhold(merchant_id, sale_id, key, quantity)
        if sale is not None:
            sale.available += quantity
        return sale is not None

    async def sell(self, merchant_id: str, sale_id: str, key: str, quantity: int) -> bool:
        sale = self._unhold(merchant_id, sale_id, key, quantity)
        if sale is not None:
            sale.sold += quantity
            self.unsynced_ids.add(sale_id)
        return sale is not None

    async def give_back(self, merchant_id: str, sale_id: str, quantity: int) -> bool:
        sale = self._sale(merchant_id, sale_id)
        if sale is None or sale.available < quantity:
            return False
        sale.available -= quantity
        sale.returned += quantity
        sale.version += 1
        self.unsynced_ids.add(sale_id)
        return True

    async def count(self, merchant_id: str, sale_id: str, member_id: str, key: str, quantity: int,
                    limit: int) -> bool:
        quota = self.quotas.setdefault(f"{sale_id}:{member_id}", {})
        if key in quota:
            return True
        if sum(quota.values()) > limit - quantity:
            return False
        quota[key] = quantity
        return True

    async def uncount(self, merchant_id: str, sale_id: str, member_id: str, key: str, quantity: int) -> bool:
        quota = self.quotas.get(f"{sale_id}:{member_id}", {})
        if quota.get(key) != quantity:
            return False
        del quota[key]
        return True

    def used(self, sale_id: str, member_id: str) -> int:
        return sum(self.quotas.get(f"{sale_id}:{member_id}", {}).values())

    async def pool_out(self, merchant_id: str, change: StockChange) -> bool:
        return await self.stock.apply(merchant_id, change)

    async def counters(self, merchant_id: str, sale_id: str) -> PoolCounters | None:
        sale = self._sale(merchant_id, sale_id)
        return PoolCounters(sale.id, sale.sku_id, sale.product_id, sale.sold, sale.returned) if sale else None

    async def applied(self, merchant_id: str, sku_id: str, sale_id: str) -> Applied | None:
        record = self.stock._record(merchant_id, sku_id)
        return record.pool_sync.get(sale_id) if record else None

    async def follow(self, merchant_id: str, pool: PoolCounters, applied: Applied) -> list[Movement]:
        record = self.stock._record(merchant_id, pool.sku_id)
        if record is None or record.pool_sync.get(pool.sale_id) != applied:
            raise StaleVersion(pool.sale_id)
        todo = flash_rules.catch_up(pool.sold, pool.returned, applied.sold, applied.returned)
        movements = []
        if todo.sold:
            movements.append(Movement(rules.COMMIT, pool.sku_id, todo.sold, f"{pool.sale_id}/{pool.sold}"))
        if todo.returned:
            movements.append(Movement(rules.POOL_IN, pool.sku_id, todo.returned, f"{pool.sale_id}/{pool.returned}"))
        record.on_hand -= todo.sold
        record.reserved -= todo.sold + todo.returned
        record.available += todo.returned
        record.books[rules.HOLDS][pool.sale_id] -= todo.sold + todo.returned
        record.pool_sync[pool.sale_id] = Applied(pool.sold, pool.returned)
        for movement in movements:
            record.pending[movement.id] = (movement, 0)
        return movements

    async def mark_synced(self, merchant_id: str, sale_id: str, sold: int, returned: int) -> None:
        sale = self._sale(merchant_id, sale_id)
        if sale is not None and (sale.sold, sale.returned) == (sold, returned):
            self.unsynced_ids.discard(sale_id)


class FakeOrders:
    def __init__(self):
        self.verdicts: dict[str, str | None] = {}  # reservation id → COMMIT, RELEASE, KEEP or None

    async def verdict(self, merchant_id: str, order_id: str, reservation_id: str) -> str | None:
        return self.verdicts.get(reservation_id)


@dataclass
class Catalog:
    """Every catalog use case on the fakes, and the fakes to look into."""
    clock: Clock
    products: FakeProducts
    categories: FakeCategories
    stock: FakeStock
    movements: FakeLedger
    reservations: FakeReservations
    sales: FakeFlashSales
    orders: FakeOrders
    product_cases: ProductUseCases
    category_cases: CategoryUseCases
    inventory_cases: InventoryUseCases
    stock_cases: StockUseCases
    flash_cases: FlashSaleUseCases
    staff_lists: StaffLists


def catalog(now: datetime = T0) -> Catalog:
    clock = Clock(now)
    products, categories, stock = FakeProducts(), FakeCategories(), FakeStock(clock)
    movements, reservations, sales, orders = FakeLedger(stock, products, clock), FakeReservations(), \
        FakeFlashSales(stock), FakeOrders()
    ledger = Ledger(movements)
    pools = Pools(sales, ledger)
    stock_cases = StockUseCases(reservations, stock, ledger, pools, orders, clock)
    return Catalog(clock, products, categories, stock, movements, reservations, sales, orders,
                   ProductUseCases(products, categories, stock, ledger), CategoryUseCases(categories),
                   InventoryUseCases(stock, movements, ledger, clock), stock_cases,
                   FlashSaleUseCases(sales, products, stock, reservations, ledger, pools, stock_cases, clock),
                   StaffLists(products, stock, categories, sales, clock))


# ---- the request context, as the servicer sets it

MERCHANT = "mch_01JTESTMERCHANT00000000000"


def staff(merchant_id: str = MERCHANT, *roles: str):
    return acting(context.RequestContext(merchant_id=merchant_id, caller_kind="staff", caller_id="stf_1",
                                         roles=roles or ("OPERATOR",)))


def service(merchant_id: str = MERCHANT):
    """The order service calling on behalf of a merchant."""
    return acting(context.RequestContext(merchant_id=merchant_id, calling_service="order"))


def shopper(merchant_id: str = MERCHANT):
    return acting(context.RequestContext(merchant_id=merchant_id, channel="H5", caller_kind="member",
                                         caller_id="mem_1"))


@dataclass
class FakeMemberPricing:
    """MemberPricing: one tier for every member; counts the calls; `fail` raises instead."""
    tier: str = "GOLD"
    discount_bp: int = 9000
    fail: Exception | None = None
    calls: list[str] = field(default_factory=list)

    async def pricing(self, member_id: str):
        from services.catalog.application.ports import MemberTier

        self.calls.append(member_id)
        if self.fail is not None:
            raise self.fail
        return MemberTier(self.tier, self.discount_bp)
