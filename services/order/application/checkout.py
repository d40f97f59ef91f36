"""Pricing a checkout. The quote and every order (normal or flash sale) go through
`Checkout.price`, so a quote shows exactly what the order would charge."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Mapping

from siyu_kit import context, limits
from siyu_kit.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound, Violations
from siyu_kit.ids import is_id
from siyu_kit.protos import utcnow

from services.order.application.ports import (Addresses, Attributions, CartRepository, Catalog,
                                              FreightTemplateRepository, MemberPricing, Members, MemberValue,
                                              SettingsRepository, SkuInfo)
from services.order.domain.freight import NOWHERE, ShippingAddress
from services.order.domain.member_value import (MAX_POINTS, NO_ASK, CouponLine, CouponQuote, OrderKind, PointsTerms,
                                                UsedValue, ValueAsk, points_discount, points_problem)
from services.order.domain.price_sources import (FLASH_SALE, LIVE, ActivityPrices, CouponDiscount, FlatShipping,
                                                 FreightShipping, LimitedTimePrices, PriceKind, PointsDiscount,
                                                 PriceSource, TierPrices)
from services.order.domain.pricing import LineInput, Pipeline, Quote
from services.order.domain.settings import OrderSettings

MAX_LINES = limits.MAX_LINES
MAX_QUANTITY = limits.MAX_LINE_QUANTITY


@dataclass(frozen=True)
class ActivityPrice:
    """A unit price an activity (a flash sale, a group buy …) offers for one SKU; `kind`
    is the step it shows as."""
    unit_price: int
    activity_id: str
    kind: PriceKind = FLASH_SALE


@dataclass(frozen=True)
class PricedValue:
    """The coupon and points a checkout was priced with, and what placing it must hold:
    the coupon's lines and the order kind it was quoted for, and the amount payable after
    the coupon that the points' cap was checked on."""
    coupon: CouponQuote | None
    coupon_lines: tuple[CouponLine, ...]
    kind: OrderKind
    points: int
    points_discount: int
    # The goods amount after the threshold reduction and the coupon, before points.
    payable_before_points: int
    # The member's points terms for this order; None when they were not read.
    terms: PointsTerms | None = None
    # Points mall: the points are the order's price, held without the discount rules.
    as_price: bool = False

    @property
    def used(self) -> UsedValue:
        c = self.coupon
        return UsedValue(coupon_id=c.coupon_id if c else "", coupon_name=c.name if c else "",
                         coupon_discount=c.amount if c else 0, points=self.points,
                         points_discount=self.points_discount)


@dataclass(frozen=True)
class PricedCheckout:
    quote: Quote
    currency: str
    tier: str
    settings: OrderSettings  # the settings the price used; the order's timeouts come from them too
    # Where the order ships; None when the member has no address and named none.
    address: ShippingAddress | None = None
    # The coupon and points; None when neither was asked for nor read.
    value: PricedValue | None = None
    # SKUs whose product earns no commission (the catalog's commission_excluded).
    commission_excluded: frozenset[str] = frozenset()


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


def _unit_prices(skus: Mapping[str, SkuInfo], member: MemberPricing, activity_prices: Mapping[str, ActivityPrice],
                 now: datetime, live_prices: Mapping[str, ActivityPrice] | None = None) -> tuple[PriceSource, ...]:
    """The unit prices competing on each line: the activity's, the SKU's limited-time
    price, the live session's price (orders attributed to it, while it applies), the
    member's tier price."""
    kinds = sorted({a.kind for a in activity_prices.values()} | {FLASH_SALE}, key=lambda k: k.rank)
    by_kind = tuple(ActivityPrices(k, {s: (a.unit_price, a.activity_id) for s, a in activity_prices.items()
                                       if a.kind == k}) for k in kinds)
    return (*by_kind,
            LimitedTimePrices({s: i.limited_time for s, i in skus.items() if i.limited_time is not None}, now),
            ActivityPrices(LIVE, {s: (a.unit_price, a.activity_id) for s, a in (live_prices or {}).items()}),
            TierPrices(member.tier, member.discount_bp, {s: i.tier_prices for s, i in skus.items()}))


# ---- attribution -------------------------------------------------------------------------
ATTRIBUTION_IDS = (("persona_id", "per"), ("content_id", "cnt"), ("live_session_id", "liv"))
MAX_SHARE_CODE = 64


def check_attribution_ids(v: Violations, attribution: dict) -> None:
    """The sources an order or a quote names: ids of their kinds, a share code of at most 64."""
    for name, prefix in ATTRIBUTION_IDS:
        value = attribution.get(name, "")
        v.check(not value or is_id(value, prefix), f"attribution.{name}", f"must be a {prefix}_ id")
    v.check(len(attribution.get("share_code", "")) <= MAX_SHARE_CODE, "attribution.share_code",
            f"at most {MAX_SHARE_CODE} characters")


@dataclass(frozen=True)
class Attributed:
    """An order's attribution as it is stored, and the live prices it gets."""
    attribution: dict
    live_prices: Mapping[str, ActivityPrice]
    # Who shared the order's share code, when it is in its window; "" otherwise.
    sharer_id: str = ""


async def attributed(attributions: Attributions | None, attribution: dict, member_id: str) -> Attributed:
    """Before anything is held: the persona, content and live session named must be the
    merchant's. The attribution the order stores: a share code in its window fills the
    persona, content and live session the order left empty; a code past its window, or one
    the merchant never issued, is dropped — a sale never fails over a stale link. The live
    prices are those of the session the order names, else the one its code carries, while
    they apply (LIVE, or ended within its grace)."""
    named = {k: attribution.get(k, "") for k in ("persona_id", "content_id", "live_session_id", "share_code")}
    if attributions is None or not any(named.values()):
        return Attributed(attribution, {})
    checked = await attributions.check_attribution(
        named["persona_id"], named["content_id"], share_code=named["share_code"], member_id=member_id,
        live_session_id=named["live_session_id"])
    live = {s: ActivityPrice(p, checked.live_session_id) for s, p in checked.live_prices.items()}
    if not named["share_code"]:
        return Attributed(attribution, live)
    if checked.carried is None:
        return Attributed({k: v for k, v in attribution.items() if k != "share_code"}, live)
    return Attributed({**{k: v for k, v in checked.carried.items() if v}, **{k: v for k, v in attribution.items() if v}},
                      live, sharer_id=checked.sharer_id)


def check_address_id(v: Violations, address_id: str) -> None:
    v.check(not address_id or is_id(address_id, "adr"), "address_id", "must be empty or an adr_ id")


def check_value_ask(v: Violations, ask: ValueAsk) -> None:
    """The coupon and points asked for, before anything is read or held; the points'
    floor and step are the merchant's and are checked once its terms are read."""
    v.check(not ask.coupon_id or is_id(ask.coupon_id, "cpn"), "coupon_id", "must be empty or a cpn_ id")
    v.check(not (ask.coupon_id and ask.best_coupon), "best_coupon", "not together with coupon_id")
    v.check(0 <= ask.points <= MAX_POINTS, "points", f"0..{MAX_POINTS}")


def _coupon_lines(quote: Quote, skus: Mapping[str, SkuInfo]) -> tuple[CouponLine, ...]:
    """The lines as a coupon sees them: the unit price after the activity or tier price,
    and what is left of each after the threshold reduction."""
    return tuple(CouponLine(sku_id=l.sku_id, product_id=l.product_id, category_path=skus[l.sku_id].category_path,
                            unit_price=l.line_amount // l.quantity, quantity=l.quantity, amount=l.paid_amount)
                 for l in quote.lines)


def _points_refused(points: int, terms: PointsTerms) -> None:
    problem = points_problem(points, terms)
    if problem is None:
        return
    reason, message = problem
    if reason == "POINTS_STEP":
        # A number the merchant's terms never allow: the request's mistake, nothing is held.
        raise InvalidArgument(f"points: {message}", reason="INVALID_FIELDS",
                              violations=[FieldViolation("points", message)])
    raise FailedPrecondition(f"points: {message}", reason=reason)


@dataclass
class Checkout:
    catalog: Catalog
    members: Members
    settings: SettingsRepository
    carts: CartRepository
    clock: Callable[[], datetime] = utcnow
    # Without these, shipping is the flat fee of the order settings and orders have no address.
    freight: FreightTemplateRepository | None = None
    addresses: Addresses | None = None
    # Coupons and points; without it an order uses neither.
    member_value: MemberValue | None = None
    # Checks a quote's attribution and gives its live prices; None: a quote has neither.
    attributions: Attributions | None = None

    async def shipping_to(self, merchant_id: str, member_id: str, address_id: str) -> ShippingAddress | None:
        """The address an order ships to (the member's default when address_id is empty;
        None when they have none), refused with REGION_NOT_SHIPPED when the merchant's
        freight template excludes its region. Called before anything is reserved. The
        default is read now, so a member who just changed it ships to the new one."""
        if self.addresses is None:
            if address_id:
                raise NotFound(f"address {address_id} not found", reason="ADDRESS_NOT_FOUND")
            return None
        address = await self.addresses.shipping_address(member_id, address_id)
        template = await self.freight.of_merchant(merchant_id) if self.freight is not None else None
        if template is not None:
            template.rule_for(address.destination if address is not None else NOWHERE)
        return address

    async def price(self, merchant_id: str, member_id: str, lines: list[tuple[str, int]],
                    activity_prices: Mapping[str, ActivityPrice] | None = None,
                    address: ShippingAddress | None = None, ask: ValueAsk = NO_ASK,
                    kind: OrderKind = OrderKind.NORMAL, show_terms: bool = False,
                    live_prices: Mapping[str, ActivityPrice] | None = None,
                    no_shipping: bool = False) -> PricedCheckout:
        """Prices valid lines (see check_lines) for the member: NOT_FOUND for a SKU that
        does not exist or is not on sale, UNAVAILABLE when the member's tier cannot be
        read. `activity_prices` by sku id compete with the member's other prices. Shipping
        is the merchant's freight template for `address` (see shipping_to), else the flat
        fee of its order settings. `ask` names the coupon (or the member's best) and the
        points: the coupon is quoted by the member service on the lines after the threshold
        reduction, the points checked against the terms for the amount left after the
        coupon (FAILED_PRECONDITION or a `points` violation when they do not fit);
        `show_terms` reads the terms even when no points are asked for. `live_prices` by sku
        id (the order's live session's, see `attributed`) compete like activity prices."""
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
        template = await self.freight.of_merchant(merchant_id) if self.freight is not None else None
        now = self.clock()
        activity_prices = activity_prices or {}
        shipping: tuple[PriceSource, ...] = ()
        if template is not None:
            # A weight rule counts each unit's catalog weight; a SKU without one weighs 0 g.
            shipping = (FreightShipping(template, address.destination if address is not None else NOWHERE,
                                        units=sum(q for _, q in lines),
                                        grams=sum(skus[s].weight_g * q for s, q in lines), tier=member.tier),)
        if no_shipping:  # collected at a pickup point (community orders): no fee, whatever the settings
            shipping = (FlatShipping(0, 0),)
        pipeline = Pipeline.of(settings, *_unit_prices(skus, member, activity_prices, now, live_prices), *shipping)
        inputs = [LineInput(sku_id=s, product_id=skus[s].product_id, title=skus[s].title, quantity=q,
                            unit_price=skus[s].unit_price)
                  for s, q in lines]
        quote = pipeline.price(inputs)
        value = None
        if self.member_value is not None and (not ask.is_empty or show_terms):
            pipeline, value = await self._member_value(member_id, pipeline, quote, skus, ask, kind, show_terms)
            quote = pipeline.price(inputs)
        return PricedCheckout(quote=quote, currency=currencies.pop(), tier=member.tier, settings=settings,
                              address=address, value=value,
                              commission_excluded=frozenset(s for s, _ in lines if skus[s].commission_excluded))

    async def _member_value(self, member_id: str, pipeline: Pipeline, quote: Quote, skus: Mapping[str, SkuInfo],
                            ask: ValueAsk, kind: OrderKind, show_terms: bool) -> tuple[Pipeline, PricedValue]:
        """The pipeline with the coupon and the points asked for, in their places."""
        coupon_lines = _coupon_lines(quote, skus)
        coupon = None
        if ask.wants_coupon:
            coupon = await self.member_value.quote_coupon(member_id, ask.coupon_id, coupon_lines, kind)
            if coupon is not None and coupon.amount > 0:
                pipeline = pipeline.register(CouponDiscount(coupon))
                quote = pipeline.price([LineInput(sku_id=l.sku_id, product_id=l.product_id, title=l.title,
                                                  quantity=l.quantity, unit_price=l.unit_price)
                                        for l in quote.lines])
            else:
                coupon = None
        # Points are capped on what is left of the goods after the coupon (never on shipping).
        before_points = sum(l.paid_amount for l in quote.lines)
        terms = None
        if ask.points or show_terms:
            terms = await self.member_value.points_terms(member_id, before_points)
        off = 0
        if ask.points:
            _points_refused(ask.points, terms)
            off = min(points_discount(ask.points, terms.points_per_yuan), before_points)
            pipeline = pipeline.register(PointsDiscount(ask.points, off))
        return pipeline, PricedValue(coupon=coupon, coupon_lines=coupon_lines, kind=kind, points=ask.points,
                                     points_discount=off, payable_before_points=before_points, terms=terms)

    async def quote(self, lines: list[tuple[str, int]], address_id: str = "",
                    ask: ValueAsk = NO_ASK, attribution: dict | None = None) -> PricedCheckout:
        """QuoteCheckout: the given lines, or the cart's selected items when none are given,
        shipped to `address_id` (or the member's default), with the coupon and points asked
        for; it shows the member's points terms for the order. With an attribution, the
        live prices an order with it would get."""
        ctx = context.current()
        member_id = ctx.require_member()
        if not lines:
            cart = await self.carts.get(ctx.merchant_id, member_id)
            lines = [(i.sku_id, i.quantity) for i in cart.selected]
            if not lines:
                raise FailedPrecondition("no lines given and no items selected in the cart", reason="CART_EMPTY")
        v = Violations()
        check_lines(v, lines)
        check_address_id(v, address_id)
        check_value_ask(v, ask)
        check_attribution_ids(v, attribution or {})
        v.raise_if_any()
        live = (await attributed(self.attributions, attribution or {}, member_id)).live_prices
        address = await self.shipping_to(ctx.merchant_id, member_id, address_id)
        return await self.price(ctx.merchant_id, member_id, lines, address=address, ask=ask, show_terms=True,
                                live_prices=live)
