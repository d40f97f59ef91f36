"""The sources a checkout price is made of. Each has a fixed place, and the place, never
the order in which sources are registered, decides when it applies:

1. UNIT_PRICE, per line: every unit-price source may offer a unit price for a line — an
   activity price (flash sale, limited-time price, group buy, bargain, live price) or the
   member's tier price. The lowest below the list price applies: one per line, never two.
2. THRESHOLD_REDUCTION, 3. COUPON, 4. POINTS: discounts on the goods amount left after
   the places before them, spread over the lines by largest remainder.
5. SHIPPING: a fee on the goods amount after every discount (at most one source).

A new source is one class with a `place` (a unit-price source also names its `kind`) and
one registration in the pipeline (`Pipeline.register`, see pricing.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import ClassVar, Mapping, Protocol, Sequence, Union

from siyu_kit.money import BASIS_POINTS, split_largest_remainder

from services.order.domain.member_value import CouponQuote
from services.order.domain.freight import Destination, FreightCharge, FreightTemplate, yuan
from services.order.domain.settings import ThresholdReduction, reduction_for

# Step names as the API shows them.
ACTIVITY_PRICE = "ACTIVITY_PRICE"  # a flash sale's price
LIMITED_TIME_PRICE = "LIMITED_TIME_PRICE"
GROUP_BUY_PRICE = "GROUP_BUY_PRICE"
BARGAIN_PRICE = "BARGAIN_PRICE"
COMMUNITY_PRICE = "COMMUNITY_PRICE"  # a community campaign's price
POINTS_MALL_PRICE = "POINTS_MALL_PRICE"  # the cash part of a points-mall item
LIVE_PRICE = "LIVE_PRICE"
TIER_DISCOUNT = "TIER_DISCOUNT"
THRESHOLD_REDUCTION = "THRESHOLD_REDUCTION"
COUPON = "COUPON"
POINTS = "POINTS"
SHIPPING = "SHIPPING"  # shown as the quote's shipping fee, not as a step


class Place(IntEnum):
    """Where a source applies; lower places apply first."""
    UNIT_PRICE = 1
    THRESHOLD_REDUCTION = 2
    COUPON = 3
    POINTS = 4
    SHIPPING = 5


@dataclass(frozen=True)
class PriceKind:
    """A kind of unit price: the step it shows as, and its rank when two offers are equally
    low (the lower rank is shown)."""
    step: str
    rank: int


FLASH_SALE = PriceKind(ACTIVITY_PRICE, 0)
LIMITED_TIME = PriceKind(LIMITED_TIME_PRICE, 1)
GROUP_BUY = PriceKind(GROUP_BUY_PRICE, 2)
BARGAIN = PriceKind(BARGAIN_PRICE, 3)
COMMUNITY = PriceKind(COMMUNITY_PRICE, 4)
POINTS_MALL = PriceKind(POINTS_MALL_PRICE, 5)
LIVE = PriceKind(LIVE_PRICE, 6)
# Activities before the tier: on equal prices the activity is shown.
TIER = PriceKind(TIER_DISCOUNT, 7)
KINDS: Mapping[str, PriceKind] = {k.step: k for k in (FLASH_SALE, LIMITED_TIME, GROUP_BUY, BARGAIN, COMMUNITY,
                                                      POINTS_MALL, LIVE, TIER)}
_UNKNOWN_RANK = max(k.rank for k in KINDS.values()) + 1


# What the sources read and produce

@dataclass(frozen=True)
class Offer:
    """A unit price that may replace the list price for this member."""
    step: str  # the kind's step: ACTIVITY_PRICE, LIMITED_TIME_PRICE, TIER_DISCOUNT …
    unit_price: int
    detail: str = ""  # the flash sale id, the tier …


@dataclass(frozen=True)
class LineInput:
    sku_id: str
    product_id: str
    title: str
    quantity: int
    unit_price: int  # the list price
    # Offers that come with the line; they compete with those of the unit-price sources.
    offers: tuple[Offer, ...] = ()


@dataclass(frozen=True)
class Step:
    step: str
    amount: int  # the discount, never negative
    detail: str = ""


@dataclass(frozen=True)
class PricedLine:
    sku_id: str
    product_id: str
    title: str
    quantity: int
    unit_price: int
    line_total: int
    # After the line's own step, before order-level discounts.
    line_amount: int
    paid_amount: int
    steps: tuple[Step, ...] = ()


# The three shapes of source. Every source has a place and a name (its step).

class UnitPriceSource(Protocol):
    """Place UNIT_PRICE: a unit price for a line, or None when it offers none."""
    @property
    def place(self) -> Place: ...

    @property
    def name(self) -> str: ...

    def offer(self, line: LineInput) -> Offer | None: ...


class OrderDiscountSource(Protocol):
    """Places THRESHOLD_REDUCTION, COUPON, POINTS: a discount on the whole goods amount left
    after the sources before it. Returns the amount it wants off and a detail; the pipeline
    never lets it take more than is left. It is spread over the lines by largest remainder
    on what each has left, unless the source answers `split(amount, left)` with its own
    shares (a coupon takes only from the lines in its scope)."""
    @property
    def place(self) -> Place: ...

    @property
    def name(self) -> str: ...

    def discount(self, lines: Sequence[PricedLine], goods_amount: int) -> tuple[int, str]: ...


class ShippingSource(Protocol):
    """Place SHIPPING: the fee for the goods amount after every discount."""
    @property
    def place(self) -> Place: ...

    @property
    def name(self) -> str: ...

    def fee(self, goods_amount: int) -> int: ...

    def rule(self, goods_amount: int) -> str:
        """Which rule set the fee, as the quote's shipping step shows it."""
        ...


PriceSource = Union[UnitPriceSource, OrderDiscountSource, ShippingSource]
# How each place asks its sources; the places between are order discounts.
PLACE_METHOD: Mapping[Place, str] = {Place.UNIT_PRICE: "offer", Place.THRESHOLD_REDUCTION: "discount",
                                     Place.COUPON: "discount", Place.POINTS: "discount", Place.SHIPPING: "fee"}


# Unit prices

def tier_offer(list_price: int, tier: str, tier_prices: Mapping[str, int], discount_bp: int) -> Offer | None:
    """The SKU's own price for the tier, else the list price × the tier's discount,
    rounded down (in the member's favour). None when it is no better than the list."""
    if not tier:
        return None
    price = tier_prices.get(tier)
    if price is None:
        price = list_price * discount_bp // BASIS_POINTS
    return Offer(TIER_DISCOUNT, price, tier) if 0 <= price < list_price else None


def limited_time_offer(price: int, starts_at: datetime | None, ends_at: datetime | None,
                       now: datetime) -> Offer | None:
    """A limited-time price applies only inside its window [starts_at, ends_at)."""
    if price < 0 or (starts_at is not None and now < starts_at) or (ends_at is not None and now >= ends_at):
        return None
    return Offer(LIMITED_TIME_PRICE, price)


def rank_of(step: str) -> int:
    """A kind's rank; a step of no declared kind ranks after all of them."""
    kind = KINDS.get(step)
    return _UNKNOWN_RANK if kind is None else kind.rank


def best_offer(list_price: int, offers: Sequence[Offer]) -> Offer | None:
    """The lowest offer below the list price: one step per line, never two. Equal prices
    go to the lower-ranked kind, then by step and detail, whatever order they came in."""
    better = [o for o in offers if 0 <= o.unit_price < list_price]
    if not better:
        return None
    return min(better, key=lambda o: (o.unit_price, rank_of(o.step), o.step, o.detail))


@dataclass(frozen=True)
class ActivityPrices:
    """An activity's unit prices by SKU. One class for every activity kind priced per SKU:
    flash sale, group buy, bargain, live price."""
    kind: PriceKind
    by_sku: Mapping[str, tuple[int, str]]  # sku id → (unit price, the activity's id)
    place: ClassVar[Place] = Place.UNIT_PRICE

    @property
    def name(self) -> str:
        return self.kind.step

    def offer(self, line: LineInput) -> Offer | None:
        found = self.by_sku.get(line.sku_id)
        return None if found is None else Offer(self.kind.step, found[0], found[1])


class PriceWindow(Protocol):
    """A SKU's limited-time price and its window; either end may be open."""
    @property
    def price(self) -> int: ...

    @property
    def starts_at(self) -> datetime | None: ...

    @property
    def ends_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class LimitedTimePrices:
    """The SKUs' own limited-time prices, each inside its window at `now`."""
    by_sku: Mapping[str, PriceWindow]
    now: datetime
    place: ClassVar[Place] = Place.UNIT_PRICE
    kind: ClassVar[PriceKind] = LIMITED_TIME
    name: ClassVar[str] = LIMITED_TIME_PRICE

    def offer(self, line: LineInput) -> Offer | None:
        window = self.by_sku.get(line.sku_id)
        return None if window is None else limited_time_offer(window.price, window.starts_at, window.ends_at,
                                                              self.now)


@dataclass(frozen=True)
class TierPrices:
    """The member's tier price: the SKU's own price for the tier, else the list price × the
    merchant's discount for the tier."""
    tier: str
    discount_bp: int
    by_sku: Mapping[str, Mapping[str, int]]  # sku id → tier → unit price
    place: ClassVar[Place] = Place.UNIT_PRICE
    kind: ClassVar[PriceKind] = TIER
    name: ClassVar[str] = TIER_DISCOUNT

    def offer(self, line: LineInput) -> Offer | None:
        return tier_offer(line.unit_price, self.tier, self.by_sku.get(line.sku_id) or {}, self.discount_bp)


# Order discounts

@dataclass(frozen=True)
class ThresholdReductions:
    """满减: the rule of the highest threshold the goods amount reaches."""
    rules: tuple[ThresholdReduction, ...]
    place: ClassVar[Place] = Place.THRESHOLD_REDUCTION
    name: ClassVar[str] = THRESHOLD_REDUCTION

    def discount(self, lines: Sequence[PricedLine], goods_amount: int) -> tuple[int, str]:
        rule = reduction_for(self.rules, goods_amount)
        if rule is None:
            return 0, ""
        return rule.reduction, f"threshold={rule.threshold},reduction={rule.reduction}"


# Places COUPON and POINTS: the member's coupon and points (domain/member_value.py).

@dataclass(frozen=True)
class CouponDiscount:
    """Place COUPON: the member service's amount, taken from the lines in its scope as
    it shares them (lines out of scope get 0). Never more than a line has left, so never
    a negative payable, and never on shipping (the pipeline discounts goods only)."""
    quote: CouponQuote
    place: ClassVar[Place] = Place.COUPON
    name: ClassVar[str] = COUPON

    def discount(self, lines: Sequence[PricedLine], goods_amount: int) -> tuple[int, str]:
        return max(self.quote.amount, 0), self.quote.coupon_id

    def split(self, amount: int, left: Sequence[int]) -> list[int]:
        """The lines' shares of `amount`: the coupon's own shares, each capped at what the
        line has left, scaled down by largest remainder when the amount is smaller."""
        shares = [min(max(s, 0), l) for s, l in zip(self.quote.shares, left)]
        shares += [0] * (len(left) - len(shares))
        if sum(shares) > amount:
            shares = split_largest_remainder(amount, shares)
        return shares


@dataclass(frozen=True)
class PointsDiscount:
    """Place POINTS: the points' value in fen, spread over what every line has left after
    the coupon, by largest remainder."""
    points: int
    amount: int
    place: ClassVar[Place] = Place.POINTS
    name: ClassVar[str] = POINTS

    def discount(self, lines: Sequence[PricedLine], goods_amount: int) -> tuple[int, str]:
        return max(self.amount, 0), f"points={self.points}"


# Shipping

@dataclass(frozen=True)
class FlatShipping:
    """A flat fee, waived when the goods amount after discounts reaches
    free_shipping_over > 0."""
    shipping_fee: int = 0
    free_shipping_over: int = 0  # 0: shipping is never free
    place: ClassVar[Place] = Place.SHIPPING
    name: ClassVar[str] = SHIPPING

    def fee(self, goods_amount: int) -> int:
        if self.free_shipping_over > 0 and goods_amount >= self.free_shipping_over:
            return 0
        return max(self.shipping_fee, 0)

    def rule(self, goods_amount: int) -> str:
        if self.free_shipping_over > 0 and goods_amount >= self.free_shipping_over:
            return f"free over {yuan(self.free_shipping_over)}"
        return f"flat {yuan(max(self.shipping_fee, 0))}"


@dataclass(frozen=True)
class FreightShipping:
    """The merchant's freight template for this order: its destination, units, weight
    in grams and the member's tier. Build it before pricing: `rule_for` refuses an
    excluded region (REGION_NOT_SHIPPED) and checkout checks that before reserving."""
    template: FreightTemplate
    to: Destination
    units: int
    grams: int = 0
    tier: str = ""
    place: ClassVar[Place] = Place.SHIPPING
    name: ClassVar[str] = SHIPPING

    def charge(self, goods_amount: int) -> FreightCharge:
        return self.template.charge(self.to, self.units, self.grams, goods_amount, self.tier)

    def fee(self, goods_amount: int) -> int:
        return max(self.charge(goods_amount).fee, 0)

    def rule(self, goods_amount: int) -> str:
        return self.charge(goods_amount).rule
