"""The checkout price pipeline: the registered price sources (price_sources.py), each in
its fixed place:

list price → per line the best unit price: an activity price (flash sale, limited-time
price, group buy, bargain, live price) or the tier price, whichever is lower, never both →
threshold reduction → coupon → points → shipping fee.

Order-level discounts are spread over the lines by largest remainder, source by source,
so every line knows what was actually paid for it (refunds and commissions need that) and
shows its own step plus its share of each order step.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from siyu_kit.money import split_largest_remainder

from services.order.domain.price_sources import (
    ACTIVITY_PRICE, BARGAIN_PRICE, COUPON, GROUP_BUY_PRICE, LIMITED_TIME_PRICE, LIVE_PRICE, PLACE_METHOD, POINTS,
    THRESHOLD_REDUCTION, TIER_DISCOUNT, FlatShipping, LineInput, Offer, OrderDiscountSource, Place, PricedLine,
    PriceSource, ShippingSource, Step, ThresholdReductions, UnitPriceSource, best_offer, limited_time_offer,
    tier_offer)
from services.order.domain.settings import OrderSettings

__all__ = [
    "ACTIVITY_PRICE", "BARGAIN_PRICE", "COUPON", "DEFAULT_PIPELINE", "GROUP_BUY_PRICE", "LIMITED_TIME_PRICE",
    "LIVE_PRICE", "POINTS", "THRESHOLD_REDUCTION", "TIER_DISCOUNT", "LineInput", "Offer", "Pipeline", "Place",
    "PricedLine", "PriceSource", "Quote", "Step", "best_offer", "limited_time_offer", "tier_offer"]


@dataclass(frozen=True)
class Quote:
    lines: tuple[PricedLine, ...]
    total: int
    line_discount: int
    order_steps: tuple[Step, ...]
    order_discount: int
    shipping_fee: int
    payable: int
    # Which shipping rule set the fee ("free over ¥99", "广东省: first 1 unit ¥8 + ¥2 per 1 unit more"):
    # a description of the fee, not part of the price, so two quotes of the same amounts are equal.
    shipping_rule: str = field(default="", compare=False)


def _in_place_order(sources: Sequence[PriceSource]) -> tuple[PriceSource, ...]:
    """The sources by place, then by name: the same pipeline whatever the order they were
    registered in. An order step's name is its own (its shares are found by it), and there
    is one shipping fee."""
    for source in sources:
        place = Place(source.place)
        if not callable(getattr(source, PLACE_METHOD[place], None)):
            raise ValueError(f"a {place.name} source answers {PLACE_METHOD[place]}(): {source!r}")
    ordered = tuple(sorted(sources, key=lambda s: (s.place, s.name)))
    order_names = [s.name for s in ordered if Place.UNIT_PRICE < s.place < Place.SHIPPING]
    if len(order_names) != len(set(order_names)):
        raise ValueError(f"two order steps share a name: {order_names}")
    if sum(s.place == Place.SHIPPING for s in ordered) > 1:
        raise ValueError("at most one shipping source")
    return ordered


@dataclass(frozen=True, init=False)
class Pipeline:
    """The registered price sources, kept in place order."""
    sources: tuple[PriceSource, ...]

    def __init__(self, *sources: PriceSource):
        object.__setattr__(self, "sources", _in_place_order(sources))

    @classmethod
    def of(cls, settings: OrderSettings, *sources: PriceSource) -> "Pipeline":
        """The merchant's threshold reductions and shipping fee, and the given sources. A
        given shipping source (the freight template) replaces the flat fee of the settings."""
        shipping: tuple[PriceSource, ...] = ()
        if not any(s.place == Place.SHIPPING for s in sources):
            shipping = (FlatShipping(settings.shipping_fee, settings.free_shipping_over),)
        return cls(ThresholdReductions(settings.threshold_reductions), *shipping, *sources)

    def register(self, *sources: PriceSource) -> "Pipeline":
        """This pipeline with more sources, each in its place."""
        return Pipeline(*self.sources, *sources)

    def in_place(self, place: Place) -> tuple[PriceSource, ...]:
        return tuple(s for s in self.sources if s.place == place)

    def price(self, lines: Sequence[LineInput]) -> Quote:
        if not lines:
            raise ValueError("an order has at least one line")
        for line in lines:
            if line.quantity <= 0 or line.unit_price < 0:
                raise ValueError("quantity must be positive and prices not negative")

        unit_prices = self.in_place(Place.UNIT_PRICE)
        priced = [_price_line(line, unit_prices) for line in lines]
        goods = sum(p.line_amount for p in priced)
        left = [p.line_amount for p in priced]  # per line, after the order steps so far
        line_steps = [list(p.steps) for p in priced]
        order_steps: list[Step] = []
        for source in self._order_discounts():
            wanted, detail = source.discount(tuple(priced), sum(left))
            # A discount never takes the goods amount below zero, nor a line below zero.
            amount = min(max(int(wanted), 0), sum(left))
            shares = _shares(source, amount, left)
            amount = sum(shares)
            if not amount:
                continue
            order_steps.append(Step(source.name, amount, detail))
            for i, share in enumerate(shares):
                if share:
                    left[i] -= share
                    line_steps[i].append(Step(source.name, share, detail))
        goods_after = sum(left)
        shipping_sources = self._shipping()
        shipping = sum(max(s.fee(goods_after), 0) for s in shipping_sources)
        shipping_rule = "; ".join(s.rule(goods_after) for s in shipping_sources if callable(getattr(s, "rule", None)))
        total = sum(p.line_total for p in priced)
        return Quote(
            lines=tuple(PricedLine(sku_id=p.sku_id, product_id=p.product_id, title=p.title, quantity=p.quantity,
                                   unit_price=p.unit_price, line_total=p.line_total, line_amount=p.line_amount,
                                   paid_amount=paid, steps=tuple(steps))
                        for p, paid, steps in zip(priced, left, line_steps)),
            total=total, line_discount=total - goods, order_steps=tuple(order_steps),
            order_discount=goods - goods_after, shipping_fee=shipping, payable=goods_after + shipping,
            shipping_rule=shipping_rule)

    def _order_discounts(self) -> tuple[OrderDiscountSource, ...]:
        return tuple(s for s in self.sources if Place.UNIT_PRICE < s.place < Place.SHIPPING)

    def _shipping(self) -> tuple[ShippingSource, ...]:
        return self.in_place(Place.SHIPPING)


def _shares(source: OrderDiscountSource, amount: int, left: list[int]) -> list[int]:
    """Each line's share of an order discount: the source's own split when it has one
    (capped at what each line has left), else by largest remainder on what is left."""
    split = getattr(source, "split", None)
    if not callable(split):
        return split_largest_remainder(amount, left)
    return [min(max(int(s), 0), l) for s, l in zip(split(amount, tuple(left)), left)]


def _price_line(line: LineInput, sources: Sequence[UnitPriceSource]) -> PricedLine:
    total = line.unit_price * line.quantity
    offers = line.offers + tuple(o for o in (s.offer(line) for s in sources) if o is not None)
    offer = best_offer(line.unit_price, offers)
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
