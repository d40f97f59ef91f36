"""The checkout price pipeline, in the order of domain.md:

list price → per line the best member price: an activity price (flash sale, limited-time
price) or the tier price, whichever is lower, never both → threshold reduction → one
coupon → points → shipping fee.

Order-level discounts are spread over the lines by largest remainder, step by step, so
every line knows what was actually paid for it (refunds and commissions need that) and
shows its own step plus its share of each order step.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, Sequence

from siyu_kit.money import BASIS_POINTS, split_largest_remainder

from services.order.domain.settings import OrderSettings, ThresholdReduction, reduction_for

ACTIVITY_PRICE = "ACTIVITY_PRICE"
LIMITED_TIME_PRICE = "LIMITED_TIME_PRICE"
TIER_DISCOUNT = "TIER_DISCOUNT"
THRESHOLD_REDUCTION = "THRESHOLD_REDUCTION"
COUPON = "COUPON"
POINTS = "POINTS"

# On equal prices the earlier kind is shown.
_OFFER_RANK = {ACTIVITY_PRICE: 0, LIMITED_TIME_PRICE: 1, TIER_DISCOUNT: 2}


@dataclass(frozen=True)
class Offer:
    """A unit price that may replace the list price for this member."""
    step: str  # ACTIVITY_PRICE, LIMITED_TIME_PRICE or TIER_DISCOUNT
    unit_price: int
    detail: str = ""  # the flash sale id, the tier …


@dataclass(frozen=True)
class LineInput:
    sku_id: str
    product_id: str
    title: str
    quantity: int
    unit_price: int  # the list price
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


@dataclass(frozen=True)
class Quote:
    lines: tuple[PricedLine, ...]
    total: int
    line_discount: int
    order_steps: tuple[Step, ...]
    order_discount: int
    shipping_fee: int
    payable: int


class OrderStep(Protocol):
    """A discount on the whole goods amount left after the steps before it. Returns the
    amount it wants off and a detail; the pipeline never lets it take more than is left."""
    name: str

    def discount(self, lines: Sequence[PricedLine], goods_amount: int) -> tuple[int, str]: ...


# Member prices of one line

def tier_offer(list_price: int, tier: str, tier_prices: dict[str, int], discount_bp: int) -> Offer | None:
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


def best_offer(list_price: int, offers: Sequence[Offer]) -> Offer | None:
    """The lowest offer below the list price: one step per line, never two."""
    better = [o for o in offers if 0 <= o.unit_price < list_price]
    if not better:
        return None
    return min(better, key=lambda o: (o.unit_price, _OFFER_RANK.get(o.step, len(_OFFER_RANK))))


# Order steps

@dataclass(frozen=True)
class ThresholdReductionStep:
    """满减: the rule of the highest threshold the goods amount reaches."""
    rules: tuple[ThresholdReduction, ...]
    name: str = THRESHOLD_REDUCTION

    def discount(self, lines: Sequence[PricedLine], goods_amount: int) -> tuple[int, str]:
        rule = reduction_for(self.rules, goods_amount)
        if rule is None:
            return 0, ""
        return rule.reduction, f"threshold={rule.threshold},reduction={rule.reduction}"


@dataclass(frozen=True)
class Pipeline:
    threshold_reductions: tuple[ThresholdReduction, ...] = ()
    # Slots for one coupon and for points, in this order after the threshold reduction.
    # The member issue brings their implementations; until then nothing fills them.
    coupon: OrderStep | None = None
    points: OrderStep | None = None
    shipping_fee: int = 0
    free_shipping_over: int = 0  # 0: shipping is never free

    @classmethod
    def of(cls, settings: OrderSettings) -> "Pipeline":
        return cls(threshold_reductions=settings.threshold_reductions, shipping_fee=settings.shipping_fee,
                   free_shipping_over=settings.free_shipping_over)

    def order_steps(self) -> tuple[OrderStep, ...]:
        steps: list[OrderStep] = [ThresholdReductionStep(self.threshold_reductions)]
        return tuple(steps + [s for s in (self.coupon, self.points) if s is not None])

    def shipping_for(self, goods_amount: int) -> int:
        """A flat fee, waived when the goods amount after discounts reaches
        free_shipping_over > 0."""
        if self.free_shipping_over > 0 and goods_amount >= self.free_shipping_over:
            return 0
        return max(self.shipping_fee, 0)

    def price(self, lines: Sequence[LineInput]) -> Quote:
        if not lines:
            raise ValueError("an order has at least one line")
        for line in lines:
            if line.quantity <= 0 or line.unit_price < 0:
                raise ValueError("quantity must be positive and prices not negative")

        priced = [_price_line(line) for line in lines]
        goods = sum(p.line_amount for p in priced)
        left = [p.line_amount for p in priced]  # per line, after the order steps so far
        line_steps = [list(p.steps) for p in priced]
        order_steps: list[Step] = []
        for step in self.order_steps():
            wanted, detail = step.discount(tuple(priced), sum(left))
            # A discount never takes the goods amount below zero.
            amount = min(max(int(wanted), 0), sum(left))
            if not amount:
                continue
            order_steps.append(Step(step.name, amount, detail))
            for i, share in enumerate(split_largest_remainder(amount, left)):
                if share:
                    left[i] -= share
                    line_steps[i].append(Step(step.name, share, detail))
        goods_after = sum(left)
        shipping = self.shipping_for(goods_after)
        total = sum(p.line_total for p in priced)
        return Quote(
            lines=tuple(PricedLine(sku_id=p.sku_id, product_id=p.product_id, title=p.title, quantity=p.quantity,
                                   unit_price=p.unit_price, line_total=p.line_total, line_amount=p.line_amount,
                                   paid_amount=paid, steps=tuple(steps))
                        for p, paid, steps in zip(priced, left, line_steps)),
            total=total, line_discount=total - goods, order_steps=tuple(order_steps),
            order_discount=goods - goods_after, shipping_fee=shipping, payable=goods_after + shipping)


def _price_line(line: LineInput) -> PricedLine:
    total = line.unit_price * line.quantity
    offer = best_offer(line.unit_price, line.offers)
    steps: tuple[Step, ...] = ()
    amount = total
    if offer is not None:
        off = (line.unit_price - offer.unit_price) * line.quantity
        amount -= off
        steps = (Step(offer.step, off, offer.detail),)
    return PricedLine(sku_id=line.sku_id, product_id=line.product_id, title=line.title, quantity=line.quantity,
                      unit_price=line.unit_price, line_total=total, line_amount=amount, paid_amount=amount,
                      steps=steps)


# Nothing to reduce, free shipping: the list price, or a member's better price.
DEFAULT_PIPELINE = Pipeline()
