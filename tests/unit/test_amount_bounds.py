"""Every amount and count a use case accepts keeps every total inside int64, checked in the
use cases' own validation as well as by the declared field rules."""
from __future__ import annotations

import socket

import grpc
import pytest
from hypothesis import given, settings, strategies as st

from siyu_kit import errors
from siyu_kit.errors import InvalidArgument, Violations
from siyu_kit.ids import new_id
from siyu_kit.money import INT64_MAX, MAX_AMOUNT, amount_ok

from services.catalog.application import validation
from services.order.adapters.content import ContentClient
from services.order.application.checkout import MAX_LINES, MAX_QUANTITY, check_lines
from services.order.domain.settings import OrderSettings, ThresholdReduction, violations


def test_the_largest_order_stays_inside_int64():
    # Every line at the most units and the dearest price, plus a fee at the bound.
    assert MAX_LINES * MAX_QUANTITY * MAX_AMOUNT + MAX_AMOUNT < INT64_MAX


@settings(max_examples=200, derandomize=True)
@given(st.integers(min_value=-2**64, max_value=2**64))
def test_amount_ok_is_exactly_the_bound(amount):
    assert amount_ok(amount) == (0 <= amount <= MAX_AMOUNT)


def test_too_many_lines_is_one_violation_before_any_line_is_read():
    v = Violations()
    check_lines(v, [("not-a-sku", 0)] * (MAX_LINES + 1))
    assert [(x.field, x.description) for x in v.items] == [("lines", f"1..{MAX_LINES} lines")]


def test_settings_refuse_amounts_beyond_the_bound():
    found = dict(violations(OrderSettings(shipping_fee=MAX_AMOUNT + 1, free_shipping_over=INT64_MAX,
                                          threshold_reductions=(ThresholdReduction(INT64_MAX, 1),))))
    assert set(found) == {"settings.shipping_fee", "settings.free_shipping_over",
                          "settings.threshold_reductions[0].threshold"}
    assert violations(OrderSettings(shipping_fee=MAX_AMOUNT, free_shipping_over=MAX_AMOUNT)) == []


def test_catalog_refuses_a_list_price_beyond_the_bound():
    sku = validation.SkuInput(code="S1", list_price=INT64_MAX)
    with pytest.raises(InvalidArgument) as raised:
        validation.upsert(validation.UpsertProduct(code="P1", title="t", skus=[sku]))
    assert {v.field for v in raised.value.violations} == {"skus[0].list_price.amount"}
    validation.upsert(validation.UpsertProduct(code="P1", title="t",
                                               skus=[validation.SkuInput(code="S1", list_price=MAX_AMOUNT)]))


async def test_an_attribution_that_cannot_be_checked_is_unavailable_not_accepted():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        client = ContentClient(channel)
        with pytest.raises(errors.Unavailable):
            await client.check_attribution(new_id("per"), "")
