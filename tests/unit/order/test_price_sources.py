"""Price sources in their fixed places: whatever sources are registered, in whatever order,
every amount adds up to the fen, the unit price is the lowest offer (never two), and the
numbers are those the pipeline gave before it took sources."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import ClassVar

import pytest
from hypothesis import given, strategies as st

from siyu_kit.money import split_largest_remainder

from services.order.domain.price_sources import (
    ACTIVITY_PRICE, COUPON, FLASH_SALE, GROUP_BUY, GROUP_BUY_PRICE, LIMITED_TIME_PRICE, POINTS, THRESHOLD_REDUCTION,
    TIER_DISCOUNT, ActivityPrices, FlatShipping, LimitedTimePrices, LineInput, Offer, Place, PricedLine,
    Step, ThresholdReductions, TierPrices, limited_time_offer, tier_offer)
from services.order.domain.pricing import Pipeline, Quote
from services.order.domain.settings import OrderSettings, ThresholdReduction

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
UNIT_STEPS = {ACTIVITY_PRICE, LIMITED_TIME_PRICE, GROUP_BUY_PRICE, TIER_DISCOUNT}


# Sources a test adds: each is one class, registered by handing it to the pipeline.

@dataclass(frozen=True)
class GroupBuyPrice:
    """A group buy's price for the SKUs it covers, once the group is formed."""
    group_id: str
    prices: dict[str, int]
    place: ClassVar[Place] = Place.UNIT_PRICE
    name: ClassVar[str] = GROUP_BUY_PRICE

    def offer(self, line: LineInput) -> Offer | None:
        price = self.prices.get(line.sku_id)
        return None if price is None else Offer(GROUP_BUY.step, price, self.group_id)


@dataclass(frozen=True)
class FixedOff:
    """An order discount wanting a fixed amount off (stands in for a coupon or points)."""
    place: Place
    name: str
    amount: int

    def discount(self, lines, goods_amount):
        return self.amount, f"{self.name} off"


@dataclass(frozen=True)
class Window:
    price: int
    starts_at: datetime | None
    ends_at: datetime | None


def line(i: int, price: int, qty: int, *offers: Offer) -> LineInput:
    return LineInput(sku_id=f"sku_{i}", product_id=f"prd_{i}", title=f"t{i}", quantity=qty, unit_price=price,
                     offers=offers)


# Any combination of sources

@dataclass(frozen=True)
class Order:
    lines: tuple[LineInput, ...]
    flash: dict[str, tuple[int, str]] | None
    limited: dict[str, Window] | None
    group: dict[str, int] | None
    tier: tuple[str, int, dict[str, dict[str, int]]] | None
    rules: tuple[ThresholdReduction, ...] | None
    coupon: int | None
    points: int | None
    shipping: tuple[int, int] | None

    def sources(self) -> list:
        found = [
            self.flash is not None and ActivityPrices(FLASH_SALE, self.flash),
            self.limited is not None and LimitedTimePrices(self.limited, NOW),
            self.group is not None and GroupBuyPrice("grp_1", self.group),
            self.tier is not None and TierPrices(*self.tier),
            self.rules is not None and ThresholdReductions(self.rules),
            self.coupon is not None and FixedOff(Place.COUPON, COUPON, self.coupon),
            self.points is not None and FixedOff(Place.POINTS, POINTS, self.points),
            self.shipping is not None and FlatShipping(*self.shipping)]
        return [s for s in found if s is not False]


# Strategies built once; `orders` draws from them.
BOOLEANS = st.booleans()
PRICES = st.one_of(st.integers(0, 2_000), st.integers(0, 1_000_000))
QUANTITIES = st.integers(1, 999)
DELTAS = st.integers(-3, 3)
PERCENTS = st.integers(0, 100)
ENDS = st.sampled_from([None, NOW - HOUR, NOW, NOW + HOUR])
TIERS = st.sampled_from(["", "GOLD", "SILVER"])
RATES = st.integers(0, 10_000)
RULES = st.lists(st.tuples(st.integers(1, 5_000_000), st.integers(1, 5_000_000)), max_size=10).map(
    lambda pairs: tuple(ThresholdReduction(t, r) for t, r in sorted({t: min(r, t - 1) for t, r in pairs
                                                                      if t > 1}.items())))
AMOUNTS = st.integers(-500, 5_000_000)
FEES = st.integers(0, 2_000)
FREE_OVER = st.integers(0, 3_000_000)


@st.composite
def orders(draw, group_buy: bool = True) -> Order:
    lines = tuple(line(i, draw(PRICES), draw(QUANTITIES)) for i in range(draw(st.integers(1, 8))))

    def near(price: int) -> int:  # often the list price or just around it, to meet ties
        if draw(BOOLEANS):
            return max(price + draw(DELTAS), 0)
        return (price + 10) * draw(PERCENTS) // 100

    def maybe(make):  # a source or none
        return make() if draw(BOOLEANS) else None

    def per_sku(value):  # values for some of the SKUs
        return lambda: {l.sku_id: value(l.unit_price) for l in lines if draw(BOOLEANS)}

    return Order(
        lines=lines,
        flash=maybe(per_sku(lambda p: (near(p), "fls_1"))),
        limited=maybe(per_sku(lambda p: Window(near(p), draw(ENDS), draw(ENDS)))),
        group=maybe(per_sku(near)) if group_buy else None,
        # The member's tier; some SKUs price GOLD themselves, the others take the tier's rate.
        tier=maybe(lambda: (draw(TIERS), draw(RATES), per_sku(lambda p: {"GOLD": near(p)})())),
        rules=maybe(lambda: draw(RULES)),
        coupon=maybe(lambda: draw(AMOUNTS)),
        points=maybe(lambda: draw(AMOUNTS)),
        shipping=maybe(lambda: (draw(FEES), draw(FREE_OVER))))


def unit_offers(sources, item: LineInput) -> list[Offer]:
    return [o for s in sources if s.place == Place.UNIT_PRICE and (o := s.offer(item)) is not None]


@given(order=orders())
def test_discounts_never_exceed_what_they_discount_and_every_part_adds_up(order):
    quote = Pipeline(*order.sources()).price(order.lines)
    assert quote.payable >= 0 and quote.shipping_fee >= 0
    assert 0 <= quote.line_discount <= quote.total == sum(l.unit_price * l.quantity for l in order.lines)
    goods = quote.total - quote.line_discount
    assert 0 <= quote.order_discount <= goods
    assert quote.order_discount == sum(s.amount for s in quote.order_steps)
    # What the lines pay, plus shipping, is what the order asks.
    assert sum(l.paid_amount for l in quote.lines) + quote.shipping_fee == quote.payable
    assert goods - quote.order_discount + quote.shipping_fee == quote.payable
    for priced in quote.lines:
        assert 0 <= priced.paid_amount <= priced.line_amount <= priced.line_total
        assert all(s.amount > 0 for s in priced.steps)
        assert priced.line_total - sum(s.amount for s in priced.steps) == priced.paid_amount
    for step in quote.order_steps:
        assert step.amount > 0
        assert sum(s.amount for l in quote.lines for s in l.steps if s.step == step.step) == step.amount


@given(order=orders())
def test_each_order_step_is_spread_over_what_the_lines_have_left_by_largest_remainder(order):
    quote = Pipeline(*order.sources()).price(order.lines)
    left = [l.line_amount for l in quote.lines]
    for step in quote.order_steps:
        assert step.amount <= sum(left)  # never more than is left
        shares = [sum(s.amount for s in l.steps if s.step == step.step) for l in quote.lines]
        assert shares == split_largest_remainder(step.amount, left)
        left = [a - b for a, b in zip(left, shares)]
    assert left == [l.paid_amount for l in quote.lines]


@given(order=orders())
def test_the_unit_price_is_the_lowest_offer_activity_or_tier_never_both(order):
    sources = order.sources()
    quote = Pipeline(*sources).price(order.lines)
    for item, priced in zip(order.lines, quote.lines):
        offers = [o for o in unit_offers(sources, item) if o.unit_price < item.unit_price]
        best = min((o.unit_price for o in offers), default=item.unit_price)
        assert priced.line_amount == best * item.quantity
        own = [s for s in priced.steps if s.step in UNIT_STEPS]
        assert len(own) == (1 if offers else 0)
        if not offers:
            continue
        assert own[0].amount == (item.unit_price - best) * item.quantity
        activities = [o.unit_price for o in offers if o.step != TIER_DISCOUNT]
        tiers = [o.unit_price for o in offers if o.step == TIER_DISCOUNT]
        if tiers and (not activities or min(tiers) < min(activities)):
            assert own[0].step == TIER_DISCOUNT
        else:  # an activity at least as low as the tier is the one shown
            assert own[0].step != TIER_DISCOUNT


@given(order=orders(), seed=st.randoms(use_true_random=False))
def test_the_quote_does_not_depend_on_the_order_sources_are_registered_in(order, seed):
    sources = order.sources()
    shuffled = list(sources)
    seed.shuffle(shuffled)
    one_by_one = Pipeline()
    for source in shuffled:
        one_by_one = one_by_one.register(source)
    assert one_by_one == Pipeline(*sources)
    assert one_by_one.price(order.lines) == Pipeline(*reversed(sources)).price(order.lines)
    assert [s.place for s in one_by_one.sources] == sorted(s.place for s in sources)


def test_a_source_registered_later_takes_its_fixed_place():
    settings = OrderSettings(threshold_reductions=(ThresholdReduction(1_000, 100),), shipping_fee=500)
    pipeline = (Pipeline.of(settings)
                .register(FixedOff(Place.POINTS, POINTS, 50))
                .register(FixedOff(Place.COUPON, COUPON, 200))
                .register(TierPrices("GOLD", 9_000, {})))
    quote = pipeline.price([line(1, 1_000, 2)])
    # The tier price first (2 × 900), then the threshold, the coupon, the points, shipping.
    assert quote.lines[0].line_amount == 1_800
    assert [(s.step, s.amount) for s in quote.order_steps] == [(THRESHOLD_REDUCTION, 100), (COUPON, 200),
                                                                (POINTS, 50)]
    assert (quote.shipping_fee, quote.payable) == (500, 1_800 - 350 + 500)
    assert [s.place for s in pipeline.sources] == [Place.UNIT_PRICE, Place.THRESHOLD_REDUCTION, Place.COUPON,
                                                   Place.POINTS, Place.SHIPPING]
    # The coupon now sees the goods after the threshold reduction, not the total.
    seen = []

    @dataclass(frozen=True)
    class Watching:
        place: ClassVar[Place] = Place.COUPON
        name: ClassVar[str] = COUPON

        def discount(self, lines, goods_amount):
            seen.append(goods_amount)
            return 0, ""

    Pipeline.of(settings).register(Watching()).price([line(1, 1_000, 2)])
    assert seen == [1_900]


def test_a_new_activity_kind_is_one_class_and_one_registration():
    tier = TierPrices("GOLD", 9_000, {})  # 900 on a list price of 1,000
    for group_price, shown in [(800, GROUP_BUY_PRICE), (900, GROUP_BUY_PRICE), (950, TIER_DISCOUNT),
                               (1_000, TIER_DISCOUNT)]:
        quote = Pipeline(tier).register(GroupBuyPrice("grp_7", {"sku_1": group_price})).price(
            [line(1, 1_000, 3), line(2, 1_000, 1)])
        own = quote.lines[0].steps
        assert own == (Step(shown, (1_000 - min(group_price, 900)) * 3, "grp_7" if shown == GROUP_BUY_PRICE
                            else "GOLD"),)
        assert quote.lines[1].steps == (Step(TIER_DISCOUNT, 100, "GOLD"),)  # the group covers only sku_1


def test_a_kind_declared_elsewhere_ranks_after_the_declared_ones_on_equal_prices():
    @dataclass(frozen=True)
    class TrialPrice:
        place: ClassVar[Place] = Place.UNIT_PRICE
        name: ClassVar[str] = "TRIAL_PRICE"

        def offer(self, item):
            return Offer("TRIAL_PRICE", 900)

    quote = Pipeline(TrialPrice(), TierPrices("GOLD", 9_000, {})).price([line(1, 1_000, 1)])
    assert quote.lines[0].steps == (Step(TIER_DISCOUNT, 100, "GOLD"),)
    quote = Pipeline(TrialPrice(), TierPrices("GOLD", 9_500, {})).price([line(1, 1_000, 1)])
    assert quote.lines[0].steps == (Step("TRIAL_PRICE", 100),)


def test_a_source_must_answer_for_its_place_and_order_steps_have_names_of_their_own():
    with pytest.raises(ValueError):
        Pipeline(FixedOff(Place.UNIT_PRICE, "NOT_A_PRICE", 1))
    with pytest.raises(ValueError):
        Pipeline(FixedOff(Place.COUPON, COUPON, 1), FixedOff(Place.POINTS, COUPON, 1))
    with pytest.raises(ValueError):
        Pipeline(FlatShipping(1), FlatShipping(2))
    with pytest.raises(ValueError):
        Pipeline.of(OrderSettings()).register(ThresholdReductions(()))


def test_the_merchants_settings_are_sources_too():
    settings = OrderSettings(threshold_reductions=(ThresholdReduction(1_000, 100),), shipping_fee=800,
                             free_shipping_over=5_000)
    assert Pipeline.of(settings) == Pipeline(FlatShipping(800, 5_000), ThresholdReductions(settings.threshold_reductions))


# The numbers are those of the pipeline before it took sources.

def _old_price(lines: list[LineInput], rules, coupon, points, shipping_fee, free_shipping_over) -> Quote:
    """The pipeline as it was: the member's offers given with each line, then the threshold
    reduction, one coupon slot, one points slot and a flat shipping fee."""
    rank = {ACTIVITY_PRICE: 0, LIMITED_TIME_PRICE: 1, TIER_DISCOUNT: 2}

    def best(list_price, offers):
        better = [o for o in offers if 0 <= o.unit_price < list_price]
        return min(better, key=lambda o: (o.unit_price, rank.get(o.step, len(rank)))) if better else None

    priced = []
    for item in lines:
        total = item.unit_price * item.quantity
        offer, steps, amount = best(item.unit_price, item.offers), (), total
        if offer is not None:
            off = (item.unit_price - offer.unit_price) * item.quantity
            amount -= off
            steps = (Step(offer.step, off, offer.detail),)
        priced.append(PricedLine(sku_id=item.sku_id, product_id=item.product_id, title=item.title,
                                 quantity=item.quantity, unit_price=item.unit_price, line_total=total,
                                 line_amount=amount, paid_amount=amount, steps=steps))
    goods = sum(p.line_amount for p in priced)
    left = [p.line_amount for p in priced]
    line_steps = [list(p.steps) for p in priced]
    order_steps = []
    for step in [ThresholdReductions(rules)] + [s for s in (coupon, points) if s is not None]:
        wanted, detail = step.discount(tuple(priced), sum(left))
        amount = min(max(int(wanted), 0), sum(left))
        if not amount:
            continue
        order_steps.append(Step(step.name, amount, detail))
        for i, share in enumerate(split_largest_remainder(amount, left)):
            if share:
                left[i] -= share
                line_steps[i].append(Step(step.name, share, detail))
    goods_after = sum(left)
    shipping = 0 if free_shipping_over > 0 and goods_after >= free_shipping_over else max(shipping_fee, 0)
    total = sum(p.line_total for p in priced)
    return Quote(
        lines=tuple(PricedLine(sku_id=p.sku_id, product_id=p.product_id, title=p.title, quantity=p.quantity,
                               unit_price=p.unit_price, line_total=p.line_total, line_amount=p.line_amount,
                               paid_amount=paid, steps=tuple(steps)) for p, paid, steps in zip(priced, left, line_steps)),
        total=total, line_discount=total - goods, order_steps=tuple(order_steps), order_discount=goods - goods_after,
        shipping_fee=shipping, payable=goods_after + shipping)


def _old_offers(order: Order, item: LineInput) -> tuple[Offer, ...]:
    """The offers checkout used to give each line: the flash sale's, the SKU's limited-time
    price, the member's tier price."""
    offers = []
    if order.flash and item.sku_id in order.flash:
        offers.append(Offer(ACTIVITY_PRICE, *order.flash[item.sku_id]))
    if order.limited and item.sku_id in order.limited:
        w = order.limited[item.sku_id]
        offers.append(limited_time_offer(w.price, w.starts_at, w.ends_at, NOW))
    if order.tier is not None:
        tier, discount_bp, by_sku = order.tier
        offers.append(tier_offer(item.unit_price, tier, by_sku.get(item.sku_id, {}), discount_bp))
    return tuple(o for o in offers if o is not None)


@given(order=orders(group_buy=False))
def test_every_number_is_the_one_the_pipeline_gave_before(order):
    shipping_fee, free_over = order.shipping or (0, 0)
    settings = OrderSettings(threshold_reductions=order.rules or (), shipping_fee=shipping_fee,
                             free_shipping_over=free_over)
    coupon = None if order.coupon is None else FixedOff(Place.COUPON, COUPON, order.coupon)
    points = None if order.points is None else FixedOff(Place.POINTS, POINTS, order.points)
    unit_prices = [s for s in order.sources() if s.place == Place.UNIT_PRICE]
    new = Pipeline.of(settings, *unit_prices, *(s for s in (coupon, points) if s is not None)).price(order.lines)
    old_lines = [LineInput(l.sku_id, l.product_id, l.title, l.quantity, l.unit_price, _old_offers(order, l))
                 for l in order.lines]
    old = _old_price(old_lines, settings.threshold_reductions, coupon, points, shipping_fee, free_over)
    assert new == old
    # Offers given with the lines price the same as the sources that make them.
    assert Pipeline.of(settings, *(s for s in (coupon, points) if s is not None)).price(old_lines) == old

