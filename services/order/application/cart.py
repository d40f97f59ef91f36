"""The member's cart: read with current catalog facts, add, update, remove. Every change
is a compare-and-set of the whole item list; without an expected version a lost race
is retried, so two devices changing the cart at once never lose a change."""
from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Callable

from siyu_kit import context, retry
from siyu_kit.aggregate import StaleVersion
from siyu_kit.errors import Conflict, NotFound, Violations
from siyu_kit.ids import is_id
from siyu_kit.protos import now_ms

from services.order.application.ports import CartRepository, Catalog, SkuInfo
from services.order.domain import cart as rules
from services.order.domain.cart import Cart

# Enough for a burst of changes from every device of one member; each retry re-reads.
MAX_ATTEMPTS = 50
STALE = "the cart changed since it was read; read it again"
TOO_FAST = "the cart is changing too fast; try again"


@dataclass(frozen=True)
class CartView:
    cart: Cart
    skus: dict[str, SkuInfo]  # current catalog facts of the items' SKUs


Change = Callable[[Cart, int], bool]


def _check_quantity(v: Violations, quantity: int) -> None:
    v.check(1 <= quantity <= rules.MAX_QUANTITY, "quantity", f"1..{rules.MAX_QUANTITY}")


def _check_version(v: Violations, expected_version: int) -> None:
    v.check(expected_version >= 0, "expected_version", "must not be negative")


@dataclass
class CartUseCases:
    carts: CartRepository
    catalog: Catalog
    clock_ms: Callable[[], int] = now_ms

    async def get(self) -> CartView:
        ctx = context.current()
        member_id = ctx.require_member()
        return await self._view(await self.carts.get(ctx.merchant_id, member_id))

    async def add(self, sku_id: str, quantity: int) -> CartView:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(is_id(sku_id, "sku"), "sku_id", "must be a sku_ id")
        _check_quantity(v, quantity)
        v.raise_if_any()
        # The one catalog call: the SKU to add and the cart's others, for the answer.
        current = await self.carts.get(ctx.merchant_id, member_id)
        skus = await self.catalog.skus(sorted({sku_id, *(i.sku_id for i in current.items)}))
        info = skus.get(sku_id)
        if info is None or not info.on_shelf:
            missing = Violations()
            missing.add("sku_id", f"{sku_id} {'is not on sale' if info else 'does not exist'}")
            raise NotFound(missing.items[0].description, reason="SKU_NOT_FOUND", violations=missing.items)
        now = self.clock_ms()
        cart = await self._change(ctx.merchant_id, member_id, lambda c, _: c.add(sku_id, quantity, now), 0,
                                  first=current)
        return await self._view(cart, skus)

    async def update(self, sku_id: str, quantity: int, selected: bool, expected_version: int) -> CartView:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(is_id(sku_id, "sku"), "sku_id", "must be a sku_ id")
        _check_quantity(v, quantity)
        _check_version(v, expected_version)
        v.raise_if_any()
        cart = await self._change(ctx.merchant_id, member_id,
                                  lambda c, at: c.update(sku_id, quantity, selected, at), expected_version)
        return await self._view(cart)

    async def remove(self, sku_ids: list[str], expected_version: int) -> CartView:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(1 <= len(sku_ids) <= rules.MAX_ITEMS, "sku_ids", f"1..{rules.MAX_ITEMS} SKU ids")
        for i, sku_id in enumerate(sku_ids):
            v.check(is_id(sku_id, "sku"), f"sku_ids[{i}]", "must be a sku_ id")
        _check_version(v, expected_version)
        v.raise_if_any()
        cart = await self._change(ctx.merchant_id, member_id, lambda c, at: c.remove(sku_ids, at), expected_version)
        return await self._view(cart)

    async def remove_ordered(self, merchant_id: str, member_id: str, sku_ids: list[str]) -> None:
        """After an order is placed: its SKUs leave the cart, whatever else changed."""
        await self._change(merchant_id, member_id, lambda c, at: c.remove(sku_ids, at), 0)

    async def _change(self, merchant_id: str, member_id: str, change: Change, expected_version: int,
                      first: Cart | None = None) -> Cart:
        """Applies `change` to the current cart and stores it if the cart is still at the
        version read. `first` is the cart as the caller has just read it."""
        attempts = 0

        async def attempt() -> Cart:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                # Lost to another device: spread the retries so they do not collide again.
                await asyncio.sleep(random.uniform(0, 0.002 * (attempts - 1)))
            cart = first if attempts == 1 and first is not None else await self.carts.get(merchant_id, member_id)
            if expected_version and expected_version != cart.version:
                raise Conflict(STALE, reason="VERSION_CONFLICT")
            if not change(cart, self.clock_ms()):
                return cart
            try:
                await self.carts.save(cart)
            except StaleVersion:
                if expected_version:
                    raise Conflict(STALE, reason="VERSION_CONFLICT") from None
                raise
            return cart

        return await retry.on_conflict(attempt, gave_up=TOO_FAST, attempts=MAX_ATTEMPTS)

    async def _view(self, cart: Cart, skus: dict[str, SkuInfo] | None = None) -> CartView:
        """The cart with its SKUs' current facts; one catalog call for what is not known."""
        known = dict(skus or {})
        missing = [i.sku_id for i in cart.items if i.sku_id not in known]
        if missing:
            known.update(await self.catalog.skus(missing))
        return CartView(cart, known)
