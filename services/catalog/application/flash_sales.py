"""Flash sale use cases: create a sale (its units leave the SKU's stock for a pool), read
and list sales, reserve units for one member, and the job that finishes what was
interrupted and gives unsold units back after the sale.

Reserving is the hot path: thousands of members at once. It costs one conditional write
on the pool, one conditional upsert on the member's quota and one insert of the
reservation; a refused member costs the failed write and two point reads. After that the
reservation commits and releases like any other (stock._settle hands it to `settle`
here).
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Callable

from siyu.catalog.v1 import catalog_pb2, events_pb2

from siyu_kit import context, delays, logging as slog
from siyu_kit.cancellation import require_time
from siyu_kit.db import run_sync
from siyu_kit.errors import AlreadyExists, Conflict, FailedPrecondition, FieldViolation, InvalidArgument, NotFound, \
    Violations
from siyu_kit.events.outbox import make_event
from siyu_kit.ids import is_id, new_id
from siyu_kit.money import DEFAULT_CURRENCY, MAX_AMOUNT, amount_ok
from siyu_kit.protos import aware, epoch_ms, money, timestamp, to_storage_precision, utcnow

from services.catalog.adapters import flash_sales as store, repositories as repo
# stock._settle hands flash reservations to `settle` here; both modules import each other
# as modules, so neither needs the other's names while it is being loaded.
from services.catalog.application import stock as stock_cases, validation
from services.catalog.application.inventory import record_movement
from services.catalog.domain import flash_sales as rules, stock as stock_rules

log = slog.get("siyu.catalog.flash_sales")

MAX_TITLE = 120
MAX_KEY = 64
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
JOB_BATCH = 100
# A limit no member reaches: units bought and held again count without being refused.
ANY_LIMIT = 2 ** 31
# Work older than this was interrupted, not in progress.
GRACE = timedelta(seconds=30)
GRACE_MS = int(GRACE.total_seconds() * 1000)
_SORT_KEY = re.compile(r"^\d{13}:fls_[0-9A-HJKMNP-TV-Z]{26}$")

STATE_NUMBERS = {rules.SCHEDULED: catalog_pb2.FLASH_SALE_STATE_SCHEDULED,
                 rules.RUNNING: catalog_pb2.FLASH_SALE_STATE_RUNNING,
                 rules.ENDED: catalog_pb2.FLASH_SALE_STATE_ENDED}


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


@dataclass(frozen=True)
class ReserveFlashSale:
    reservation_id: str
    order_id: str
    flash_sale_id: str
    member_id: str
    quantity: int
    expires_at: datetime | None


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


# ---- messages

def flash_sale_message(doc: dict, now: datetime | None = None) -> catalog_pb2.FlashSale:
    starts_at, ends_at = aware(doc["starts_at"]), aware(doc["ends_at"])
    currency = doc["currency"]
    return catalog_pb2.FlashSale(
        flash_sale_id=doc["_id"], title=doc["title"], product_id=doc["product_id"], sku_id=doc["sku_id"],
        price=money(doc["price"], currency), list_price=money(doc["sku"]["list_price"], currency),
        total_units=int(doc["units"]), available_units=int(doc["available"]), reserved_units=int(doc["reserved"]),
        sold_units=int(doc["sold"]), per_member_limit=int(doc["per_member_limit"]),
        starts_at=timestamp(starts_at), ends_at=timestamp(ends_at), live_session_id=doc.get("live_session_id", ""),
        state=STATE_NUMBERS[rules.state(starts_at, ends_at, now or utcnow())], version=int(doc["version"]))


def sku_detail_message(doc: dict) -> catalog_pb2.SkuDetail:
    """The sale's SKU as it was when the sale was made; the sale itself decides whether
    it can be bought, so no product status is given."""
    sku, currency = doc["sku"], doc["currency"]
    return catalog_pb2.SkuDetail(
        sku=catalog_pb2.Sku(
            sku_id=doc["sku_id"], product_id=doc["product_id"], code=sku["code"],
            attributes=sku.get("attributes") or {}, list_price=money(sku["list_price"], currency),
            available=int(doc["available"]),
            tier_prices=[catalog_pb2.TierPrice(tier=t["tier"], price=money(t["price"], currency))
                         for t in sku.get("tier_prices") or []]),
        product_title=sku["product_title"])


# ---- creating

def _find_sku(merchant_id: str, sku_id: str) -> tuple[dict, dict]:
    """The product and its SKU entry, or NOT_FOUND."""
    stock = repo.stock_get(merchant_id, sku_id)
    product = repo.product_get(merchant_id, stock["product_id"]) if stock else None
    sku = next((s for s in (product or {}).get("skus") or [] if s["sku_id"] == sku_id), None)
    if sku is None:
        raise NotFound("no such SKU", reason="SKU_NOT_FOUND", violations=[FieldViolation("sku_id", "no such SKU")])
    return product, sku


def _pool(doc: dict) -> dict:
    """Take the sale's units out of the SKU's stock and open the pool; a repeat or a resumed
    creation finds the units taken and finishes."""
    if doc["pooled"]:
        return doc
    merchant_id, sale_id, sku_id, units = doc["merchant_id"], doc["_id"], doc["sku_id"], int(doc["units"])
    if store.stock_pool_out(merchant_id, sku_id, sale_id, units) or repo.stock_has_hold(merchant_id, sku_id, sale_id):
        record_movement(merchant_id, sku_id, doc["product_id"], stock_rules.POOL_OUT, units, sale_id)
        store.sale_mark_pooled(merchant_id, sale_id)
        return {**doc, "pooled": 1, "version": int(doc["version"]) + 1}
    store.sale_discard(merchant_id, sale_id)
    stock = repo.stock_get(merchant_id, sku_id)
    left = int(stock["available"]) if stock else 0
    raise FailedPrecondition(f"only {left} units of the SKU are available", reason="INSUFFICIENT_STOCK",
                             violations=[FieldViolation("units", f"at most {left}")])


def _create(merchant_id: str, cmd: CreateFlashSale, now: datetime) -> dict:
    existing = store.sale_by_key(merchant_id, cmd.idempotency_key)
    if existing is not None:
        return _pool(existing)
    product, sku = _find_sku(merchant_id, cmd.sku_id)
    list_price = int(sku["list_price"])
    if cmd.price >= list_price:
        raise InvalidArgument("the flash price must be below the list price", reason="INVALID_FIELDS",
                              violations=[FieldViolation("price.amount", f"must be below the list price {list_price}")])
    sale_id = new_id("fls")
    fields = {
        "id": sale_id, "merchant_id": merchant_id, "idempotency_key": cmd.idempotency_key,
        "title": cmd.title or product["title"], "product_id": product["_id"], "sku_id": cmd.sku_id,
        "sku": {"code": sku["code"], "attributes": sku.get("attributes") or {}, "list_price": list_price,
                "currency": cmd.currency, "product_title": product["title"],
                "tier_prices": list(sku.get("tier_prices") or [])},
        "price": cmd.price, "currency": cmd.currency, "units": cmd.units, "available": cmd.units, "reserved": 0,
        "sold": 0, "returned": 0, "per_member_limit": cmd.per_member_limit, "starts_at": cmd.starts_at,
        "ends_at": cmd.ends_at, "live_session_id": cmd.live_session_id,
        "sort_key": rules.sort_key(epoch_ms(cmd.starts_at), sale_id), "pooled": 0, "unsynced": 0, "holds": {},
        "created_at": now, "updated_ms": epoch_ms(now), "version": 1}
    # Inserted before any stock moves, so an interrupted creation leaves a record the job
    # finishes; a concurrent repeat of the same key lands on the unique index.
    if not store.sale_insert(fields):
        existing = store.sale_by_key(merchant_id, cmd.idempotency_key)
        if existing is None:
            raise Conflict("the flash sale was created concurrently; try again")
        return _pool(existing)
    doc = {"_id": sale_id, **{k: v for k, v in fields.items() if k not in ("id", "holds")}}
    return _pool(doc)


# ---- reserving

def _refuse(reason: str, message: str = "") -> FailedPrecondition:
    return FailedPrecondition(message or rules.MESSAGES[reason], reason=reason)


def _count_and_record(merchant_id: str, cmd: ReserveFlashSale, sale: dict, now: datetime) -> tuple[dict, dict]:
    """The pool holds the units: count them against the member's limit, then write the
    reservation. Over the limit, the units go back to the pool."""
    sale_id, rid, quantity = cmd.flash_sale_id, cmd.reservation_id, cmd.quantity
    outcome = store.LIMIT
    if quantity <= int(sale["per_member_limit"]):
        outcome = store.quota_take(merchant_id, sale_id, cmd.member_id, rid, quantity, int(sale["per_member_limit"]))
    if outcome == store.LIMIT:
        store.pool_release(merchant_id, sale_id, rid, quantity)
        raise _refuse(rules.LIMIT_REACHED)
    fields = {"merchant_id": merchant_id, "order_id": cmd.order_id, "state": stock_rules.RESERVED,
              "lines": [{"sku_id": sale["sku_id"], "quantity": quantity}], "expires_at": cmd.expires_at,
              "flash_sale_id": sale_id, "member_id": cmd.member_id, "confirmed": 1, "settled": 1,
              "created_at": now, "updated_ms": epoch_ms(now), "version": 1}
    doc = {"_id": rid, **fields}
    event = make_event("siyu.catalog.reservation.reserved", merchant_id=merchant_id, aggregate_id=rid,
                       aggregate_version=1, payload=events_pb2.ReservationChanged(reservation=stock_cases.reservation_message(doc)))
    if store.reservation_insert({"id": rid, **fields}, event):
        return doc, sale
    return _existing(merchant_id, cmd)


def _existing(merchant_id: str, cmd: ReserveFlashSale) -> tuple[dict, dict]:
    """A repeated reservation id: the reservation it made, if it was this sale's."""
    doc = repo.reservation_get(merchant_id, cmd.reservation_id)
    if doc is None or doc.get("flash_sale_id") != cmd.flash_sale_id or doc.get("member_id") != cmd.member_id:
        raise AlreadyExists("the reservation id is taken", reason="RESERVATION_ID_TAKEN")
    return doc, store.sale_get(merchant_id, cmd.flash_sale_id)


def _reserve(merchant_id: str, cmd: ReserveFlashSale, now: datetime) -> tuple[dict, dict]:
    for _ in range(3):
        sale = store.pool_take(merchant_id, cmd.flash_sale_id, cmd.reservation_id, cmd.quantity, cmd.member_id,
                               epoch_ms(cmd.expires_at), now)
        if sale is not None:
            return _count_and_record(merchant_id, cmd, sale, now)
        if repo.reservation_get(merchant_id, cmd.reservation_id) is not None:
            return _existing(merchant_id, cmd)
        sale = store.sale_get(merchant_id, cmd.flash_sale_id)
        if sale is None or not sale["pooled"]:
            raise NotFound("no such flash sale", reason="FLASH_SALE_NOT_FOUND")
        reason = rules.refusal(aware(sale["starts_at"]), aware(sale["ends_at"]), now)
        left = int(sale["available"])
        if reason != rules.SOLD_OUT:
            raise _refuse(reason)
        if left < cmd.quantity:
            raise _refuse(reason, f"only {left} left in the flash sale" if left else "")
        # Enough left inside the window: this reservation holds units already (an earlier
        # attempt was interrupted before writing it), or units came back meanwhile.
        hold = store.pool_hold(merchant_id, cmd.flash_sale_id, cmd.reservation_id)
        if hold is not None:
            if hold["q"] != cmd.quantity or hold["member_id"] != cmd.member_id:
                raise AlreadyExists("the reservation id is taken", reason="RESERVATION_ID_TAKEN")
            return _count_and_record(merchant_id, cmd, sale, now)
    raise _refuse(rules.SOLD_OUT)


def _reserve_for_caller(merchant_id: str, cmd: ReserveFlashSale, now: datetime) -> tuple[dict, dict]:
    # Tests hold a buyer here to give up on the call before the units left the pool.
    delays.stall("catalog.flash.before")
    return _reserve(merchant_id, cmd, now)


# ---- settling: the pool moves, the SKU's stock follows

def catch_up(merchant_id: str, sale_id: str, tries: int = 10) -> bool:
    """Bring the SKU's stock up to its pool's sold and returned units. Idempotent; False if
    it kept losing races to other catch-ups (the job tries again)."""
    for _ in range(tries):
        pool = store.pool_counters(merchant_id, sale_id)
        applied = store.stock_pool_applied(merchant_id, pool["sku_id"], sale_id) if pool else None
        if applied is None:
            return True  # no such sale, or its units never left the stock: nothing to follow
        sku_id, sold, returned = pool["sku_id"], int(pool["sold"]), int(pool["returned"])
        todo = rules.catch_up(sold, returned, int(applied["sold"]), int(applied["returned"]))
        if not todo.nothing:
            if not store.stock_follow_pool(merchant_id, sku_id, sale_id, applied, sold, returned):
                continue  # another catch-up went first: look again
            if todo.sold:
                record_movement(merchant_id, sku_id, pool["product_id"], stock_rules.COMMIT, todo.sold,
                                store.movement_reference(sale_id, sold))
            if todo.returned:
                record_movement(merchant_id, sku_id, pool["product_id"], stock_rules.POOL_IN, todo.returned,
                                store.movement_reference(sale_id, returned))
        store.sale_mark_synced(merchant_id, sale_id, sold, returned)
        return True
    return False


def settle(doc: dict) -> None:
    """Move the pool of a COMMITTED or RELEASED flash reservation, each step at most once.
    Paid units are sold and the SKU's stock follows; released units are free again and no
    longer count against the member's limit (an unpaid order does not use it up)."""
    merchant_id, rid, sale_id = doc["merchant_id"], stock_cases.hold_key(doc), doc["flash_sale_id"]
    quantity = int(doc["lines"][0]["quantity"])
    if doc["state"] == stock_rules.COMMITTED:
        store.pool_commit(merchant_id, sale_id, rid, quantity)
        catch_up(merchant_id, sale_id)
    else:
        store.pool_release(merchant_id, sale_id, rid, quantity)
        store.quota_release(merchant_id, sale_id, doc["member_id"], rid, quantity)


def hold_again(doc: dict, key: str) -> bool:
    """A payment reached a released flash reservation: take its units from the pool again
    under `key` if they are free, and count them against the member's limit again (the
    member bought them; the limit is not checked a second time). False when the pool has
    too few units left."""
    merchant_id, sale_id = doc["merchant_id"], doc["flash_sale_id"]
    quantity = int(doc["lines"][0]["quantity"])
    held = store.pool_take_again(merchant_id, sale_id, key, quantity, doc["member_id"],
                                 epoch_ms(aware(doc["expires_at"]))) \
        or store.pool_hold(merchant_id, sale_id, key) is not None
    if held:
        store.quota_take(merchant_id, sale_id, doc["member_id"], key, quantity, limit=ANY_LIMIT)
    return held


# ---- the job

def _release_orphans(sale: dict, now_ms: int) -> int:
    """Pool holds past their expiry whose reservation was never written (the reserving
    process died after taking the units)."""
    merchant_id, released = sale["merchant_id"], 0
    for rid, hold in (sale.get("holds") or {}).items():
        if hold["exp_ms"] > now_ms - GRACE_MS or \
                repo.reservation_get(merchant_id, stock_rules.reservation_of_hold(rid)):
            continue  # still in time, or the reservation settles it (sweeper, order events)
        if store.pool_release(merchant_id, sale["_id"], rid, int(hold["q"])):
            released += 1
        store.quota_release(merchant_id, sale["_id"], hold["member_id"], rid, int(hold["q"]))
    return released


def _tend(now: datetime, holding_after: str) -> tuple[int, str]:
    """What the job did, and the sale id the next run's scan of held units continues after
    (the scan walks all holding sales a batch per run, then starts over)."""
    done = 0
    for doc in store.sales_unpooled(now - GRACE, JOB_BATCH):
        try:
            _pool(doc)
        except FailedPrecondition:
            log.warning("flash_sale.discarded", flash_sale_id=doc["_id"], reason="INSUFFICIENT_STOCK")
        done += 1
    holding = store.sales_holding(holding_after, JOB_BATCH)
    for sale in holding:
        done += _release_orphans(sale, epoch_ms(now))
    for sale in store.sales_ended_with_units(now, JOB_BATCH):
        if store.pool_return(sale["merchant_id"], sale["_id"], int(sale["available"])):
            done += 1
        catch_up(sale["merchant_id"], sale["_id"])
    for sale in store.sales_unsynced(JOB_BATCH):
        if catch_up(sale["merchant_id"], sale["_id"]):
            done += 1
    return done, (holding[-1]["_id"] if len(holding) == JOB_BATCH else "")


class FlashSaleUseCases:
    def __init__(self, events_committed: Callable[[], None], clock: Callable[[], datetime] = utcnow):
        # Wakes the outbox relay after a reservation was written with its event.
        self.events_committed = events_committed
        self.clock = clock
        self._holding_after = ""

    def _now(self) -> datetime:
        return to_storage_precision(self.clock())

    async def create(self, cmd: CreateFlashSale) -> dict:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        now = self._now()
        return await run_sync(_create, ctx.require_merchant(), validate_create(cmd, now), now)

    async def get(self, flash_sale_id: str) -> dict:
        merchant_id = context.current().require_merchant()
        v = Violations()
        v.check(is_id(flash_sale_id, "fls"), "flash_sale_id", "a fls_ id")
        v.raise_if_any()
        doc = await run_sync(store.sale_get, merchant_id, flash_sale_id)
        if doc is None or not doc["pooled"]:
            raise NotFound("no such flash sale", reason="FLASH_SALE_NOT_FOUND")
        return doc

    async def list_sales(self, live_session_id: str, page_size: int, page_token: str) -> tuple[list[dict], str]:
        merchant_id = context.current().require_merchant()
        after = _decode_token(page_token) if page_token else ""
        v = Violations()
        v.check(0 <= page_size <= MAX_PAGE_SIZE, "page_size", f"1 to {MAX_PAGE_SIZE}, or 0 for {DEFAULT_PAGE_SIZE}")
        v.check(not live_session_id or is_id(live_session_id, "liv"), "live_session_id", "empty or a liv_ id")
        v.check(not page_token or bool(_SORT_KEY.match(after)), "page_token", "not a token from a previous page")
        v.raise_if_any()
        size = page_size or DEFAULT_PAGE_SIZE
        docs = await run_sync(lambda: store.sales_page(merchant_id, live_session_id=live_session_id, after_key=after,
                                                       ends_after=self._now(), limit=size + 1))
        more = len(docs) > size
        docs = docs[:size]
        return docs, (_encode_token(docs[-1]["sort_key"]) if more else "")

    async def reserve(self, cmd: ReserveFlashSale) -> tuple[dict, dict]:
        """The reservation and the sale after it. FAILED_PRECONDITION with reason SOLD_OUT,
        LIMIT_REACHED, NOT_STARTED or ENDED when the member gets nothing. A caller that
        gives up meanwhile takes nothing from the pool: the work runs to its end and the
        units go back at once."""
        merchant_id = context.current().require_merchant()
        now = self._now()
        cmd = validate_reserve(cmd, now)
        require_time(stock_cases.RESERVE_MIN_TIME_S, "reserve the flash sale")
        return await stock_cases.finish_or_release(merchant_id, cmd.reservation_id, self._reserve(merchant_id, cmd, now),
                                                   self.events_committed)

    async def _reserve(self, merchant_id: str, cmd: ReserveFlashSale, now: datetime) -> tuple[dict, dict]:
        try:
            return await run_sync(_reserve_for_caller, merchant_id, cmd, now)
        finally:
            self.events_committed()

    async def tend(self) -> int:
        """The job: finish interrupted creations, release holds of reservations never
        written, give unsold units of ended sales back, bring stock up to its pools."""
        done, self._holding_after = await run_sync(_tend, self._now(), self._holding_after)
        return done
