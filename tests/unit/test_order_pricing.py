"""The price pipeline: totals, caps and the spread of order-level discounts."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, strategies as st

from services.order.domain.pricing import DEFAULT_PIPELINE, LineInput, Pipeline


def line(i: int, price: int, qty: int) -> LineInput:
    return LineInput(sku_id=f"sku_{i}", product_id=f"prd_{i}", title=f"t{i}", quantity=qty, unit_price=price)


@dataclass(frozen=True)
class FixedOff:
    name: str
    amount: int

    def discount(self, lines, goods_amount):
        return self.amount


@dataclass(frozen=True)
class PerLineOff:
    name: str
    amounts: tuple[int, ...]

    def discounts(self, lines):
        return list(self.amounts)


@dataclass(frozen=True)
class FlatShipping:
    amount: int

    def fee(self, lines, goods_amount):
        return self.amount


def test_default_pipeline_charges_list_price_and_free_shipping():
    quote = DEFAULT_PIPELINE.price([line(1, 1999, 2), line(2, 500, 1)])
    assert quote.total == 4498
    assert quote.payable == 4498
    assert quote.shipping_fee == 0
    assert [l.paid_amount for l in quote.lines] == [3998, 500]
    assert quote.adjustments == ()


def test_order_discount_is_spread_by_largest_remainder():
    quote = Pipeline(order_steps=(FixedOff("coupon", 100),)).price([line(1, 100, 1), line(2, 100, 1), line(3, 100, 1)])
    assert quote.payable == 200
    assert [l.paid_amount for l in quote.lines] == [66, 67, 67]


def test_discount_never_exceeds_goods():
    quote = Pipeline(order_steps=(FixedOff("coupon", 10_000), FixedOff("points", 50))).price([line(1, 300, 1)])
    assert quote.payable == 0
    assert quote.order_discount == 300
    assert [a.step for a in quote.adjustments] == ["coupon"]


def test_empty_order_is_rejected():
    with pytest.raises(ValueError):
        DEFAULT_PIPELINE.price([])


lines_st = st.lists(st.tuples(st.integers(0, 1_000_000), st.integers(1, 999)), min_size=1, max_size=50)


@given(lines=lines_st, order_offs=st.lists(st.integers(-500, 5_000_000), max_size=4),
       line_off=st.integers(-100, 2_000_000), shipping=st.integers(0, 2_000))
def test_payable_never_negative_and_lines_add_up(lines, order_offs, line_off, shipping):
    items = [line(i, p, q) for i, (p, q) in enumerate(lines)]
    pipeline = Pipeline(line_steps=(PerLineOff("tier", tuple([line_off] * len(items))),),
                        order_steps=tuple(FixedOff(f"s{i}", a) for i, a in enumerate(order_offs)),
                        shipping=FlatShipping(shipping))
    quote = pipeline.price(items)
    assert quote.payable >= 0
    assert all(l.paid_amount >= 0 for l in quote.lines)
    assert all(l.paid_amount <= l.line_amount <= l.line_total for l in quote.lines)
    assert sum(l.paid_amount for l in quote.lines) + quote.shipping_fee == quote.payable
    assert quote.total == sum(p * q for p, q in lines)
    assert quote.total - quote.line_discount - quote.order_discount + quote.shipping_fee == quote.payable


@given(lines=lines_st)
def test_without_discounts_each_line_pays_its_total(lines):
    quote = DEFAULT_PIPELINE.price([line(i, p, q) for i, (p, q) in enumerate(lines)])
    assert [l.paid_amount for l in quote.lines] == [p * q for p, q in lines]
    assert quote.payable == quote.total
