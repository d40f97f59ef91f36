"""Pricing a checkout. The quote and every order (normal or flash sale) go through
`Checkout.price`, so a quote shows exactly what the order would charge."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Mapping

from siyu_kit import context
from siyu_kit.errors import FailedPrecondition, NotFound, Violations
from siyu_kit.ids import is_id
from siyu_kit.protos import utcnow

from services.order.application.ports import (CartRepository, Catalog, MemberPricing, Members, SettingsRepository,
                                              SkuInfo)
from services.order.domain.pricing import (ACTIVITY_PRICE, LineInput, Offer, Pipeline, Quote, limited_time_offer,
                                           tier_offer)
from services.order.domain.settings import OrderSettings

MAX_LINES = 50
MAX_QUANTITY = 999


@dataclass(frozen=True)
class ActivityPrice:
    """A unit price an activity (a flash sale) offers for one SKU."""
    unit_price: int
    activity_id: str


@dataclass(frozen=True)
class PricedCheckout:
    quote: Quote
    currency: str
    tier: str
    settings: OrderSettings  # the settings the price used; the order's timeouts come from them too


def check_lines(v: Violations, lines: list[tuple[str, int]]) -> None:
    """The rules for order lines, the same for a quote and an order. The count comes first:
    a request with too many lines gets one violation, not one per line."""
    if not v.check(1 <= len(lines) <= MAX_LINES, "lines", f"1..{MAX_LINES} lines"):
        return
    seen: dict[str, int] = {}
    for i, (sku_id, quantity) in enumerate(lines):
        if not is_id(sku_id, "sku"):
            v.add(f"lines[{i}].sku_id", "must be a sku_ id")
        elif sku_id in seen:
            v.add(f"lines[{i}].sku_id", f"the same SKU as lines[{seen[sku_id]}]; one line per SKU")
        else:
            seen[sku_id] = i
        v.check(1 <= quantity <= MAX_QUANTITY, f"lines[{i}].quantity", f"1..{MAX_QUANTITY}")


def _offers(sku: SkuInfo, member: MemberPricing, activity: ActivityPrice | None, now: datetime) -> tuple[Offer, ...]:
    offers = []
    if activity is not None:
        offers.append(Offer(ACTIVITY_PRICE, activity.unit_price, activity.activity_id))
    if sku.limited_time is not None:
        offers.append(limited_time_offer(sku.limited_time.price, sku.limited_time.starts_at,
                                         sku.limited_time.ends_at, now))
    offers.append(tier_offer(sku.unit_price, member.tier, sku.tier_prices, member.discount_bp))
    return tuple(o for o in offers if o is not None)


@dataclass
class Checkout:
    catalog: Catalog
    members: Members
    settings: SettingsRepository
    carts: CartRepository
    clock: Callable[[], datetime] = utcnow

    async def price(self, merchant_id: str, member_id: str, lines: list[tuple[str, int]],
                    activity_prices: Mapping[str, ActivityPrice] | None = None) -> PricedCheckout:
        """Prices valid lines (see check_lines) for the member: NOT_FOUND for a SKU that
        does not exist or is not on sale, UNAVAILABLE when the member's tier cannot be
        read. `activity_prices` by sku id compete with the member's other prices."""
        skus, member = await asyncio.gather(self.catalog.skus([s for s, _ in lines]),
                                            self.members.pricing(member_id))
        missing = Violations()
        for i, (sku_id, _) in enumerate(lines):
            info = skus.get(sku_id)
            if info is None:
                missing.add(f"lines[{i}].sku_id", f"{sku_id} does not exist")
            elif not info.on_shelf:
                missing.add(f"lines[{i}].sku_id", f"{sku_id} is not on sale")
        if missing.items:
            first = missing.items[0]
            raise NotFound(f"{first.field}: {first.description}", reason="SKU_NOT_FOUND", violations=missing.items)
        currencies = {skus[s].currency for s, _ in lines}
        if len(currencies) != 1:
            raise FailedPrecondition("the lines are priced in different currencies", reason="MIXED_CURRENCY")
        settings = await self.settings.of_merchant(merchant_id)
        now = self.clock()
        activity_prices = activity_prices or {}
        quote = Pipeline.of(settings).price([
            LineInput(sku_id=s, product_id=skus[s].product_id, title=skus[s].title, quantity=q,
                      unit_price=skus[s].unit_price, offers=_offers(skus[s], member, activity_prices.get(s), now))
            for s, q in lines])
        return PricedCheckout(quote=quote, currency=currencies.pop(), tier=member.tier, settings=settings)

    async def quote(self, lines: list[tuple[str, int]]) -> PricedCheckout:
        """QuoteCheckout: the given lines, or the cart's selected items when none are given."""
        ctx = context.current()
        member_id = ctx.require_member()
        if not lines:
            cart = await self.carts.get(ctx.merchant_id, member_id)
            lines = [(i.sku_id, i.quantity) for i in cart.selected]
            if not lines:
                raise FailedPrecondition("no lines given and no items selected in the cart", reason="CART_EMPTY")
        v = Violations()
        check_lines(v, lines)
        v.raise_if_any()
        return await self.price(ctx.merchant_id, member_id, lines)
