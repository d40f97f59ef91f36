"""Points mall products: staff make items, members order them for points (plus cash).

Ordering is a flash-sale order of another kind (application/flash_orders.py): the item's
catalog pool decides who gets units (its per-member limit and its race are the catalog's),
the line is priced at the cash price as an activity price, and the points are held through
the same value hold as any order's points (application/member_value.py), only as the
order's price: the member service holds them without the discount rules, never more than
are available. POINTS_INSUFFICIENT releases the units at once, so nothing is held and no
units are taken. From then on the order's own lifecycle spends the points at payment,
releases them on cancel or expiry and returns them on refund.
"""
from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Protocol

from siyu_kit import context, logging as slog, paging
from siyu_kit.aggregate import StaleVersion
from siyu_kit.cancellation import require_time
from siyu_kit.errors import Conflict, FieldViolation, InvalidArgument, NotFound, Violations
from siyu_kit.ids import is_id, new_id
from siyu_kit.protos import to_storage_precision, utcnow

from services.order.application.checkout import ActivityPrice, Checkout, PricedValue, check_address_id
from services.order.domain.price_sources import POINTS_MALL
from services.order.application.orders import (MAX_KEY, PLACE_MIN_TIME_S, OrderUseCases, attribution_of,
                                                check_attribution_and_remark, place_fingerprint)
from services.order.application.ports import (ActivityPool, ActivityPools, FlashCatalog, OrderRepository,
                                              SettingsRepository)
from services.order.domain import points_mall as rules
from services.order.domain.idempotency import require_same_request
from services.order.domain.member_value import OrderKind
from services.order.domain.orders import Order, OrderActivity
from services.order.domain.points_mall import ItemState, PointsMallItem

log = slog.get("siyu.order.points_mall")

MAX_QUANTITY = 100


class PointsMallItems(Protocol):
    async def add(self, item: PointsMallItem) -> PointsMallItem:
        """Stores a new item, or answers the one its idempotency key made."""
        ...

    async def get(self, merchant_id: str, item_id: str) -> PointsMallItem | None: ...

    async def save(self, item: PointsMallItem) -> None:
        """Its title, points price and state on the version read (StaleVersion otherwise)."""
        ...

    async def page(self, merchant_id: str, after: str, limit: int,
                   open_at: datetime | None) -> list[PointsMallItem]:
        """Newest first after the id `after`; only items open at `open_at` when given."""
        ...


@dataclass(frozen=True)
class ItemDraft:
    sku_id: str
    title: str
    points_price: int
    cash_price: int
    units: int
    per_member_limit: int
    starts_at: datetime | None
    ends_at: datetime | None


@dataclass(frozen=True)
class ItemView:
    """An item with what its pool has left."""
    item: PointsMallItem
    units_left: int


@dataclass(frozen=True)
class PlacePointsMallOrderInput:
    item_id: str
    idempotency_key: str
    quantity: int = 0  # 0: one unit
    address_id: str = ""
    attribution: dict = field(default_factory=dict)
    remark: str = ""


@dataclass
class PointsMallUseCases:
    items: PointsMallItems
    pools: ActivityPools
    catalog: FlashCatalog
    orders: OrderRepository
    settings: SettingsRepository
    checkout: Checkout
    order_cases: OrderUseCases
    clock: Callable[[], datetime] = utcnow

    # ---- staff ------------------------------------------------------------------------------
    async def create(self, draft: ItemDraft, idempotency_key: str) -> ItemView:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        v.check(is_id(draft.sku_id, "sku"), "sku_id", "a sku_ id")
        rules.check_item(v, draft.title, draft.points_price, draft.cash_price, draft.units, draft.per_member_limit,
                         draft.starts_at, draft.ends_at)
        v.check(1 <= len(idempotency_key) <= MAX_KEY, "idempotency_key", f"1..{MAX_KEY} characters")
        v.raise_if_any()
        # The pool is made once per key (the catalog's idempotency), so a retried create
        # moves no more units; the item's own key then answers the first item.
        try:
            pool = await self.pools.create_pool(f"points-mall:{idempotency_key}", rules.KIND, draft.sku_id,
                                                draft.cash_price, draft.units, draft.per_member_limit or 1,
                                                draft.starts_at, draft.ends_at, draft.title)
        except InvalidArgument as error:
            # The pool's price is this item's cash price: its rule is named by our field.
            raise InvalidArgument(error.message, reason=error.reason, violations=[
                FieldViolation("cash_price" if v.field == "price.amount" else v.field, v.description)
                for v in error.violations]) from error
        item = PointsMallItem(
            id=new_id("pmi"), merchant_id=ctx.merchant_id, version=1, pool_id=pool.pool_id, sku_id=pool.sku_id,
            product_id=pool.product_id, title=draft.title or pool.title, points_price=draft.points_price,
            cash_price=pool.price, list_price=pool.list_price, total_units=pool.total,
            per_member_limit=pool.per_member_limit, starts_at=draft.starts_at, ends_at=draft.ends_at,
            state=ItemState.ACTIVE, created_at=to_storage_precision(self.clock()), idempotency_key=idempotency_key)
        stored = await self.items.add(item)
        return ItemView(stored, pool.available)

    async def update(self, item_id: str, title: str, points_price: int, expected_version: int) -> ItemView:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        v.check(is_id(item_id, "pmi"), "item_id", "a pmi_ id")
        rules.check_change(v, title, points_price)
        v.check(expected_version >= 1, "expected_version", "the item's version")
        v.raise_if_any()
        item = await self._item(ctx.merchant_id, item_id)
        if item.version != expected_version:
            raise Conflict("the item changed since it was read", reason="VERSION_CONFLICT")
        item.change(title, points_price)
        try:
            await self.items.save(item)
        except StaleVersion as error:
            raise Conflict("the item changed since it was read", reason="VERSION_CONFLICT") from error
        return await self._view(await self._item(ctx.merchant_id, item_id))

    async def end(self, item_id: str) -> ItemView:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        v.check(is_id(item_id, "pmi"), "item_id", "a pmi_ id")
        v.raise_if_any()
        for _ in range(3):
            item = await self._item(ctx.merchant_id, item_id)
            if not item.end():
                return await self._view(item)
            try:
                await self.items.save(item)
                return await self._view(await self._item(ctx.merchant_id, item_id))
            except StaleVersion:
                continue
        raise Conflict("the item kept changing; try again", reason="CONCURRENT_UPDATE")

    async def staff_list(self, page_size: int, page_token: str) -> tuple[list[ItemView], str]:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        return await self._page(ctx.merchant_id, page_size, page_token, None, "staff")

    # ---- members ----------------------------------------------------------------------------
    async def listed(self, page_size: int, page_token: str) -> tuple[list[ItemView], str]:
        ctx = context.current()
        ctx.require_member()
        return await self._page(ctx.merchant_id, page_size, page_token, self.clock(), "member")

    async def get(self, item_id: str) -> ItemView:
        ctx = context.current()
        ctx.require_member()
        v = Violations()
        v.check(is_id(item_id, "pmi"), "item_id", "a pmi_ id")
        v.raise_if_any()
        return await self._view(await self._item(ctx.merchant_id, item_id))

    async def place(self, cmd: PlacePointsMallOrderInput) -> Order:
        ctx = context.current()
        member_id = ctx.require_member()
        merchant_id = ctx.merchant_id
        v = Violations()
        v.check(is_id(cmd.item_id, "pmi"), "item_id", "a pmi_ id")
        v.check(1 <= len(cmd.idempotency_key) <= MAX_KEY, "idempotency_key", f"1..{MAX_KEY} characters")
        v.check(0 <= cmd.quantity <= MAX_QUANTITY, "quantity", f"1..{MAX_QUANTITY}, or 0 for one")
        check_attribution_and_remark(v, cmd.attribution, cmd.remark, ctx.channel)
        check_address_id(v, cmd.address_id)
        v.raise_if_any()
        quantity = cmd.quantity or 1
        request_hash = place_fingerprint(cmd)
        existing = await self.orders.by_key(merchant_id, member_id, cmd.idempotency_key)
        if existing:
            require_same_request(existing.request_hash, request_hash, "order")
            return existing
        item = await self._item(merchant_id, cmd.item_id)
        now = to_storage_precision(self.clock())
        item.require_open(now)
        checked = await self.order_cases.attributed(cmd.attribution)
        address = await self.checkout.shipping_to(merchant_id, member_id, cmd.address_id)
        settings = await self.settings.of_merchant(merchant_id)
        expires_at = now + timedelta(seconds=settings.unpaid_expiry_s)
        order_id, reservation_id = new_id("ord"), new_id("rsv")
        require_time(PLACE_MIN_TIME_S, "order from the points mall")
        won = await self.order_cases.reserved(reservation_id, self.catalog.reserve_flash_sale(
            reservation_id, order_id, item.pool_id, member_id, quantity,
            self.order_cases.reservation_expiry(expires_at), kind=rules.KIND))
        try:
            priced = await self.checkout.price(
                merchant_id, member_id, [(won.sku_id, quantity)],
                activity_prices={won.sku_id: ActivityPrice(won.unit_price, item.id, POINTS_MALL)}, address=address,
                kind=OrderKind.NORMAL)
            # The points are the order's price beside its cash: held as such, never a discount.
            before_points = sum(l.paid_amount for l in priced.quote.lines)
            priced = dataclasses.replace(priced, value=PricedValue(
                coupon=None, coupon_lines=(), kind=OrderKind.NORMAL, points=item.points_for(quantity),
                points_discount=0, payable_before_points=before_points, as_price=True))
            referral = await self.order_cases.referral(member_id, checked.sharer_id)
        except (Exception, asyncio.CancelledError):
            await self.order_cases.release_at_once(reservation_id)
            raise
        # Refused (POINTS_INSUFFICIENT …): the units go back at once and nothing is held.
        held_at = await self.order_cases.hold_value(merchant_id, member_id, order_id, reservation_id, priced,
                                                    expires_at)
        return await self.order_cases.create_order(
            merchant_id=merchant_id, member_id=member_id, idempotency_key=cmd.idempotency_key, priced=priced,
            order_id=order_id, reservation_id=reservation_id, created_at=now, expires_at=expires_at,
            attribution=attribution_of(checked.attribution, ctx.channel), remark=cmd.remark,
            request_hash=request_hash, value_held_at=held_at, referral=referral,
            activity=OrderActivity(kind=rules.KIND, activity_id=item.id, points_price=item.points_for(quantity)))

    # ---- reads ------------------------------------------------------------------------------
    async def _page(self, merchant_id: str, page_size: int, page_token: str, open_at: datetime | None,
                    who: str) -> tuple[list[ItemView], str]:
        v = Violations()
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="points_mall_items", who=who)
        after = paging.decode_cursor(v, page_token, fp)
        v.raise_if_any()
        found = await self.items.page(merchant_id, after, size + 1, open_at)
        more = len(found) > size
        found = found[:size]
        views = list(await asyncio.gather(*(self._view(i) for i in found)))
        return views, paging.encode_cursor(fp, found[-1].id) if more else ""

    async def _view(self, item: PointsMallItem) -> ItemView:
        pool: ActivityPool | None = await self.pools.pool(item.pool_id)
        left = pool.available if pool is not None and item.state is ItemState.ACTIVE else 0
        return ItemView(item, left)

    async def _item(self, merchant_id: str, item_id: str) -> PointsMallItem:
        item = await self.items.get(merchant_id, item_id)
        if item is None:
            raise NotFound(f"points-mall item {item_id} not found")
        return item
