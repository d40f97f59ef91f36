"""Flash sale use cases: create a sale (its units leave the SKU's stock for a pool), read
and list sales, reserve units for one member, and the job that finishes what was
interrupted and gives unsold units back after the sale.

Reserving is the hot path: thousands of members at once. It costs one conditional write
on the pool, one conditional upsert on the member's quota and one insert of the
reservation; a refused member costs the failed write and two point reads. After that the
reservation commits and releases like any other (its pool moves in application.pools).
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Callable

from siyu_kit import context, delays, logging as slog, retry
from siyu_kit.aggregate import StaleVersion
from siyu_kit.cancellation import require_time
from siyu_kit.errors import AlreadyExists, Conflict, FailedPrecondition, FieldViolation, InvalidArgument, NotFound, \
    Violations
from siyu_kit.ids import is_id, new_id
from siyu_kit.money import DEFAULT_CURRENCY, MAX_AMOUNT, amount_ok
from siyu_kit.protos import epoch_ms, to_storage_precision, utcnow

from services.catalog.application import validation
from services.catalog.application.ledger import Ledger
from services.catalog.application.pools import Pools
from services.catalog.application.ports import FlashSaleRepository, ProductRepository, ReservationRepository, \
    StockRepository
from services.catalog.application.sold_out import SoldOut
from services.catalog.application.stock import RESERVE_MIN_TIME_S, StockUseCases
from services.catalog.domain import flash_sales as rules, stock as stock_rules
from services.catalog.domain.flash_sales import FlashSale, PoolHold, SaleHolds, SaleSku
from services.catalog.domain.reservations import Reservation
from services.catalog.domain.stock import StockChange

log = slog.get("siyu.catalog.flash_sales")

MAX_TITLE = 120
MAX_KEY = 64
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
JOB_BATCH = 100
# Work older than this was interrupted, not in progress.
GRACE = timedelta(seconds=30)
GRACE_MS = int(GRACE.total_seconds() * 1000)
_SORT_KEY = re.compile(r"^\d{13}:fls_[0-9A-HJKMNP-TV-Z]{26}$")


@dataclass(frozen=True)
class CreateFlashSale:
    idempotency_key: str
    sku_id: str
    price: int
    units: int
    starts_at: datetime | None
    ends_at: datetime | None
    title: str = ""
    currency: str = ""
    per_member_limit: int = 0  # 0: the default
    live_session_id: str = ""
    kind: str = rules.FLASH_SALE


@dataclass(frozen=True)
class ReserveFlashSale:
    reservation_id: str
    order_id: str
    flash_sale_id: str
    member_id: str
    quantity: int
    expires_at: datetime | None
    kind: str = rules.FLASH_SALE


def validate_create(cmd: CreateFlashSale, now: datetime) -> CreateFlashSale:
    v = Violations()
    v.check(0 < len(cmd.idempotency_key) <= MAX_KEY, "idempotency_key", f"required, 1 to {MAX_KEY} characters")
    v.check(len(cmd.title.strip()) <= MAX_TITLE, "title", f"at most {MAX_TITLE} characters")
    v.check(is_id(cmd.sku_id, "sku"), "sku_id", "a sku_ id")
    v.check(amount_ok(cmd.price), "price.amount", f"0 to {MAX_AMOUNT}")
    v.check(cmd.currency in ("", DEFAULT_CURRENCY), "price.currency", "only CNY")
    v.check(1 <= cmd.units <= rules.MAX_UNITS, "units", f"1 to {rules.MAX_UNITS}")
    v.check(0 <= cmd.per_member_limit <= rules.MAX_PER_MEMBER_LIMIT, "per_member_limit",
            f"1 to {rules.MAX_PER_MEMBER_LIMIT}, or 0 for the default ({rules.DEFAULT_PER_MEMBER_LIMIT})")
    v.check(not cmd.live_session_id or is_id(cmd.live_session_id, "liv"), "live_session_id", "empty or a liv_ id")
    v.check(cmd.kind in rules.KINDS, "kind", "an activity kind")
    v.check(cmd.starts_at is not None, "starts_at", "required")
    if v.check(cmd.ends_at is not None, "ends_at", "required"):
        v.check(cmd.ends_at > now, "ends_at", "must be in the future")
        v.check(cmd.starts_at is None or cmd.starts_at < cmd.ends_at, "ends_at", "must be after starts_at")
    v.raise_if_any()
    return replace(cmd, title=cmd.title.strip(), currency=DEFAULT_CURRENCY,
                   per_member_limit=rules.per_member_limit(cmd.per_member_limit),
                   starts_at=to_storage_precision(cmd.starts_at), ends_at=to_storage_precision(cmd.ends_at))


def validate_reserve(cmd: ReserveFlashSale, now: datetime) -> ReserveFlashSale:
    v = Violations()
    # It becomes a key of the pool's and the quota's holds maps: no dots, no dollar.
    v.check(bool(validation.CODE.match(cmd.reservation_id)), "reservation_id",
            "1 to 64 characters of A-Z, a-z, 0-9, _ or -")
    v.check(0 < len(cmd.order_id) <= 64, "order_id", "1 to 64 characters")
    v.check(is_id(cmd.flash_sale_id, "fls"), "flash_sale_id", "a fls_ id")
    v.check(is_id(cmd.member_id, "mem"), "member_id", "a mem_ id")
    v.check(1 <= cmd.quantity <= rules.MAX_PER_MEMBER_LIMIT, "quantity", f"1 to {rules.MAX_PER_MEMBER_LIMIT}")
    v.check(cmd.kind in rules.KINDS, "kind", "an activity kind")
    if v.check(cmd.expires_at is not None, "expires_at", "required"):
        v.check(cmd.expires_at > now, "expires_at", "must be in the future")
    v.raise_if_any()
    return replace(cmd, expires_at=to_storage_precision(cmd.expires_at))


def _decode_token(token: str) -> str:
    try:
        key = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        key = ""
    return key


def _encode_token(sort_key: str) -> str:
    return base64.urlsafe_b64encode(sort_key.encode()).decode().rstrip("=")


def _refuse(reason: str, message: str = "") -> FailedPrecondition:
    return FailedPrecondition(message or rules.MESSAGES[reason], reason=reason)


def _taken() -> AlreadyExists:
    return AlreadyExists("the reservation id is taken", reason="RESERVATION_ID_TAKEN")


class FlashSaleUseCases:
    def __init__(self, sales: FlashSaleRepository, products: ProductRepository, stock: StockRepository,
                 reservations: ReservationRepository, ledger: Ledger, pools: Pools, stock_cases: StockUseCases,
                 clock: Callable[[], datetime] = utcnow, sold_out: SoldOut | None = None):
        self.sales = sales
        # Pools seen empty: presses answered SOLD_OUT without a database command.
        self.sold_out = sold_out or SoldOut()
        self.products = products
        self.stock = stock
        self.reservations = reservations
        self.ledger = ledger
        self.pools = pools
        # Releases a reservation whose caller gave up.
        self.stock_cases = stock_cases
        self.clock = clock
        self._holding_after = ""

    def _now(self) -> datetime:
        return to_storage_precision(self.clock())

    # ---- creating

    async def _find_sku(self, merchant_id: str, sku_id: str) -> tuple[dict, dict]:
        """The product and its SKU entry, or NOT_FOUND."""
        stock = await self.stock.get(merchant_id, sku_id)
        product = await self.products.get(merchant_id, stock.product_id) if stock else None
        sku = next((s for s in (product or {}).get("skus") or [] if s["sku_id"] == sku_id), None)
        if sku is None:
            raise NotFound("no such SKU", reason="SKU_NOT_FOUND", violations=[FieldViolation("sku_id", "no such SKU")])
        return product, sku

    async def _pool(self, sale: FlashSale) -> FlashSale:
        """Take the sale's units out of the SKU's stock and open the pool; a repeat or a resumed
        creation finds the units taken and finishes."""
        if sale.pooled:
            return sale
        merchant_id = sale.merchant_id
        change = StockChange.pool_out(sale.sku_id, sale.id, sale.units)
        if await self.sales.pool_out(merchant_id, change) or await self.stock.holds(merchant_id, sale.sku_id, sale.id):
            await self.ledger.record(merchant_id, change.movement, sale.product_id)
            await self.sales.mark_pooled(merchant_id, sale.id)
            sale.pooled, sale.version = True, sale.version + 1
            return sale
        await self.sales.discard(merchant_id, sale.id)
        stock = await self.stock.get(merchant_id, sale.sku_id)
        left = stock.available if stock else 0
        raise FailedPrecondition(f"only {left} units of the SKU are available", reason="OUT_OF_STOCK",
                                 violations=[FieldViolation("units", f"at most {left}")])

    async def _create(self, merchant_id: str, cmd: CreateFlashSale, now: datetime) -> FlashSale:
        existing = await self.sales.by_key(merchant_id, cmd.idempotency_key)
        if existing is not None:
            return await self._pool(existing)
        product, sku = await self._find_sku(merchant_id, cmd.sku_id)
        list_price = int(sku["list_price"])
        if cmd.price >= list_price:
            raise InvalidArgument("the flash price must be below the list price", reason="INVALID_FIELDS",
                                  violations=[FieldViolation("price.amount",
                                                             f"must be below the list price {list_price}")])
        sale_id = new_id("fls")
        sale = FlashSale(
            id=sale_id, merchant_id=merchant_id, idempotency_key=cmd.idempotency_key,
            title=cmd.title or product["title"], product_id=product["_id"], sku_id=cmd.sku_id,
            sku=SaleSku(sku["code"], dict(sku.get("attributes") or {}), list_price, cmd.currency, product["title"],
                        tuple((t["tier"], int(t["price"])) for t in sku.get("tier_prices") or []),
                        int(sku.get("weight_g") or 0)),
            price=cmd.price, currency=cmd.currency, units=cmd.units, available=cmd.units,
            per_member_limit=cmd.per_member_limit, starts_at=cmd.starts_at, ends_at=cmd.ends_at,
            live_session_id=cmd.live_session_id, sort_key=rules.sort_key(epoch_ms(cmd.starts_at), sale_id),
            created_at=now, kind=cmd.kind)
        # Inserted before any stock moves, so an interrupted creation leaves a record the job
        # finishes; a concurrent repeat of the same key lands on the unique index.
        if not await self.sales.add(sale):
            existing = await self.sales.by_key(merchant_id, cmd.idempotency_key)
            if existing is None:
                raise Conflict("the flash sale was created concurrently; try again")
            return await self._pool(existing)
        return await self._pool(sale)

    async def create(self, cmd: CreateFlashSale) -> FlashSale:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        now = self._now()
        return await self._create(ctx.require_merchant(), validate_create(cmd, now), now)

    # ---- reading

    async def get(self, flash_sale_id: str) -> FlashSale:
        merchant_id = context.current().require_merchant()
        v = Violations()
        v.check(is_id(flash_sale_id, "fls"), "flash_sale_id", "a fls_ id")
        v.raise_if_any()
        sale = await self.sales.get(merchant_id, flash_sale_id)
        if sale is None or not sale.pooled:
            raise NotFound("no such flash sale", reason="FLASH_SALE_NOT_FOUND")
        return sale

    async def list_sales(self, live_session_id: str, page_size: int, page_token: str,
                         product_id: str = "") -> tuple[list[FlashSale], str]:
        merchant_id = context.current().require_merchant()
        after = _decode_token(page_token) if page_token else ""
        v = Violations()
        v.check(0 <= page_size <= MAX_PAGE_SIZE, "page_size", f"1 to {MAX_PAGE_SIZE}, or 0 for {DEFAULT_PAGE_SIZE}")
        v.check(not live_session_id or is_id(live_session_id, "liv"), "live_session_id", "empty or a liv_ id")
        v.check(not product_id or is_id(product_id, "prd"), "product_id", "empty or a prd_ id")
        v.check(not page_token or bool(_SORT_KEY.match(after)), "page_token", "not a token from a previous page")
        v.raise_if_any()
        size = page_size or DEFAULT_PAGE_SIZE
        sales = await self.sales.page(merchant_id, live_session_id=live_session_id, after_key=after,
                                      ends_after=self._now(), limit=size + 1, product_id=product_id)
        more = len(sales) > size
        sales = sales[:size]
        return sales, (_encode_token(sales[-1].sort_key) if more else "")

    # ---- reserving

    async def _count_and_record(self, merchant_id: str, cmd: ReserveFlashSale, sale: FlashSale,
                                now: datetime) -> tuple[Reservation, FlashSale]:
        """The pool holds the units: count them against the member's limit, then write the
        reservation. Over the limit, the units go back to the pool."""
        sale_id, rid, quantity = cmd.flash_sale_id, cmd.reservation_id, cmd.quantity
        counted = quantity <= sale.per_member_limit and await self.sales.count(
            merchant_id, sale_id, cmd.member_id, rid, quantity, sale.per_member_limit)
        if not counted:
            await self.sales.release(merchant_id, sale_id, rid, quantity)
            raise _refuse(rules.LIMIT_REACHED)
        reservation = Reservation.of_flash_sale(rid, merchant_id, cmd.order_id, sale.sku_id, quantity, cmd.expires_at,
                                                sale_id, cmd.member_id, now)
        if await self.reservations.add(reservation):
            return reservation, sale
        return await self._existing(merchant_id, cmd)

    async def _existing(self, merchant_id: str, cmd: ReserveFlashSale) -> tuple[Reservation, FlashSale]:
        """A repeated reservation id: the reservation it made, if it was this sale's."""
        reservation = await self.reservations.get(merchant_id, cmd.reservation_id)
        if reservation is None or reservation.flash_sale_id != cmd.flash_sale_id \
                or reservation.member_id != cmd.member_id:
            raise _taken()
        return reservation, await self.sales.get(merchant_id, cmd.flash_sale_id)

    async def _reserve(self, merchant_id: str, cmd: ReserveFlashSale, now: datetime) -> tuple[Reservation, FlashSale]:
        hold = PoolHold(cmd.quantity, cmd.member_id, epoch_ms(cmd.expires_at))

        async def attempt() -> tuple[Reservation, FlashSale]:
            sale = await self.sales.take(merchant_id, cmd.flash_sale_id, cmd.reservation_id, hold, now, cmd.kind)
            if sale is not None:
                if sale.available == 0:
                    self.sold_out.remember(merchant_id, cmd.flash_sale_id)
                return await self._count_and_record(merchant_id, cmd, sale, now)
            if await self.reservations.get(merchant_id, cmd.reservation_id) is not None:
                return await self._existing(merchant_id, cmd)
            sale = await self.sales.get(merchant_id, cmd.flash_sale_id)
            # A pool of another kind is not for sale through this call.
            if sale is None or not sale.pooled or sale.kind != cmd.kind:
                raise NotFound("no such flash sale", reason="FLASH_SALE_NOT_FOUND")
            reason = sale.refusal(now)
            if reason != rules.SOLD_OUT:
                raise _refuse(reason)
            if sale.available == 0:
                self.sold_out.remember(merchant_id, cmd.flash_sale_id)
            if sale.available < cmd.quantity:
                raise _refuse(reason, f"only {sale.available} left in the flash sale" if sale.available else "")
            # Enough left inside the window: this reservation holds units already (an earlier
            # attempt was interrupted before writing it), or units came back meanwhile.
            held = await self.sales.hold_of(merchant_id, cmd.flash_sale_id, cmd.reservation_id)
            if held is not None:
                if held.quantity != cmd.quantity or held.member_id != cmd.member_id:
                    raise _taken()
                return await self._count_and_record(merchant_id, cmd, sale, now)
            raise StaleVersion("units came back to the pool: take again")

        try:
            return await retry.on_conflict(attempt, gave_up=rules.MESSAGES[rules.SOLD_OUT])
        except Conflict:
            raise _refuse(rules.SOLD_OUT) from None

    async def _reserve_for_caller(self, merchant_id: str, cmd: ReserveFlashSale,
                                  now: datetime) -> tuple[Reservation, FlashSale]:
        # Tests hold a buyer here to give up on the call before the units left the pool.
        await delays.pause("catalog.flash.before")
        return await self._reserve(merchant_id, cmd, now)

    async def reserve(self, cmd: ReserveFlashSale) -> tuple[Reservation, FlashSale]:
        """The reservation and the sale after it. FAILED_PRECONDITION with reason SOLD_OUT,
        LIMIT_REACHED, NOT_STARTED or ENDED when the member gets nothing. A caller that
        gives up meanwhile takes nothing from the pool: the work runs to its end and the
        units go back at once."""
        merchant_id = context.current().require_merchant()
        now = self._now()
        cmd = validate_reserve(cmd, now)
        require_time(RESERVE_MIN_TIME_S, "reserve the flash sale")
        if self.sold_out.known(merchant_id, cmd.flash_sale_id):
            raise _refuse(rules.SOLD_OUT)
        return await self.stock_cases.finish_or_release(merchant_id, cmd.reservation_id,
                                                        self._reserve_for_caller(merchant_id, cmd, now))

    # ---- the job

    async def _release_orphans(self, sale: SaleHolds, now_ms: int) -> int:
        """Pool holds past their expiry whose reservation was never written (the reserving
        process died after taking the units)."""
        merchant_id, released = sale.merchant_id, 0
        for key, hold in sale.holds.items():
            if hold.expires_ms > now_ms - GRACE_MS or \
                    await self.reservations.get(merchant_id, stock_rules.reservation_of_hold(key)):
                continue  # still in time, or the reservation settles it (sweeper, order events)
            if await self.sales.release(merchant_id, sale.id, key, hold.quantity):
                released += 1
            await self.sales.uncount(merchant_id, sale.id, hold.member_id, key, hold.quantity)
        return released

    async def tend(self) -> int:
        """The job: finish interrupted creations, release holds of reservations never
        written, give unsold units of ended sales back, bring stock up to its pools."""
        now, done = self._now(), 0
        for sale in await self.sales.unpooled(now - GRACE, JOB_BATCH):
            try:
                await self._pool(sale)
            except FailedPrecondition:
                log.warning("flash_sale.discarded", flash_sale_id=sale.id, reason="OUT_OF_STOCK")
            done += 1
        # The scan of held units walks all holding sales a batch per run, then starts over.
        holding = await self.sales.holding(self._holding_after, JOB_BATCH)
        for sale in holding:
            done += await self._release_orphans(sale, epoch_ms(now))
        for sale in await self.sales.ended_with_units(now, JOB_BATCH):
            if await self.sales.give_back(sale.merchant_id, sale.id, sale.available):
                done += 1
            await self.pools.catch_up(sale.merchant_id, sale.id)
        for merchant_id, sale_id in await self.sales.unsynced(JOB_BATCH):
            if await self.pools.catch_up(merchant_id, sale_id):
                done += 1
        self._holding_after = holding[-1].id if len(holding) == JOB_BATCH else ""
        await self.sales.settle_ended(now)
        return done
