"""The checkout price pipeline.

list price per line → line steps (activity price or tier discount) → order steps
(threshold reductions, one coupon, points) → shipping fee. Order-level discounts are
spread over the lines by largest remainder so every line knows what was actually paid
for it (refunds and commissions need that).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

from siyu_kit.money import split_largest_remainder


@dataclass(frozen=True)
class LineInput:
    sku_id: str
    product_id: str
    title: str
    quantity: int
    unit_price: int


@dataclass(frozen=True)
class PricedLine:
    sku_id: str
    product_id: str
    title: str
    quantity: int
    unit_price: int
    line_total: int
    # After line-level steps (activity / tier price), before order-level discounts.
    line_amount: int
    paid_amount: int


@dataclass(frozen=True)
class Adjustment:
    step: str
    amount: int


@dataclass(frozen=True)
class Quote:
    lines: tuple[PricedLine, ...]
    total: int
    line_discount: int
    order_discount: int
    shipping_fee: int
    payable: int
    adjustments: tuple[Adjustment, ...] = field(default_factory=tuple)


class LineStep(Protocol):
    """Activity price or tier discount: a discount per line, in minor units."""
    name: str

    def discounts(self, lines: Sequence[LineInput]) -> list[int]: ...


class OrderStep(Protocol):
    """Threshold reduction, coupon or points: one discount on the goods amount left."""
    name: str

    def discount(self, lines: Sequence[LineInput], goods_amount: int) -> int: ...


class ShippingPolicy(Protocol):
    def fee(self, lines: Sequence[LineInput], goods_amount: int) -> int: ...


class FreeShipping:
    def fee(self, lines: Sequence[LineInput], goods_amount: int) -> int:
        return 0


@dataclass(frozen=True)
class Pipeline:
    line_steps: tuple[LineStep, ...] = ()
    order_steps: tuple[OrderStep, ...] = ()
    shipping: ShippingPolicy = field(default_factory=FreeShipping)

    def price(self, lines: Sequence[LineInput]) -> Quote:
        if not lines:
            raise ValueError("an order has at least one line")
        for line in lines:
            if line.quantity <= 0 or line.unit_price < 0:
                raise ValueError("quantity must be positive and prices not negative")
        totals = [line.unit_price * line.quantity for line in lines]
        amounts = list(totals)
        adjustments: list[Adjustment] = []
        for step in self.line_steps:
            wanted = step.discounts(lines)
            if len(wanted) != len(lines):
                raise ValueError(f"step {step.name} must price every line")
            applied = [min(max(d, 0), a) for d, a in zip(wanted, amounts)]
            amounts = [a - d for a, d in zip(amounts, applied)]
            if sum(applied):
                adjustments.append(Adjustment(step.name, sum(applied)))
        goods = sum(amounts)
        order_discount = 0
        for step in self.order_steps:
            # A discount never takes the goods amount below zero.
            applied = min(max(step.discount(lines, goods - order_discount), 0), goods - order_discount)
            order_discount += applied
            if applied:
                adjustments.append(Adjustment(step.name, applied))
        shares = split_largest_remainder(order_discount, amounts)
        shipping_fee = max(self.shipping.fee(lines, goods - order_discount), 0)
        priced = tuple(
            PricedLine(sku_id=l.sku_id, product_id=l.product_id, title=l.title, quantity=l.quantity,
                       unit_price=l.unit_price, line_total=t, line_amount=a, paid_amount=a - s)
            for l, t, a, s in zip(lines, totals, amounts, shares)
        )
        total = sum(totals)
        return Quote(lines=priced, total=total, line_discount=total - goods, order_discount=order_discount,
                     shipping_fee=shipping_fee, payable=goods - order_discount + shipping_fee,
                     adjustments=tuple(adjustments))


# No activities, tier prices, reductions, coupons or points are wired yet: the list price
# is what the member pays, and shipping is free.
DEFAULT_PIPELINE = Pipeline()
