"""One line limit for an order's lines: order quotes and places them, catalog reserves and
takes them back, the protos state it; all with the numbers of siyu_kit.limits."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from siyu.order.v1 import order_pb2

from siyu_kit import field_rules, limits
from siyu_kit.errors import InvalidArgument, Violations
from siyu_kit.ids import new_id

from services.catalog.application import validation
from services.order.application import checkout


def _rules(message, field: str):
    return field_rules.rules_of(message.DESCRIPTOR.fields_by_name[field])


def test_the_limit_is_fifty_lines_of_at_most_999_units():
    assert (limits.MAX_LINES, limits.MAX_LINE_QUANTITY) == (50, 999)


def test_both_services_use_the_kit_numbers():
    assert (checkout.MAX_LINES, checkout.MAX_QUANTITY) == (limits.MAX_LINES, limits.MAX_LINE_QUANTITY)
    assert (validation.MAX_LINES, validation.MAX_QUANTITY) == (limits.MAX_LINES, limits.MAX_LINE_QUANTITY)


@pytest.mark.parametrize("message", [order_pb2.PlaceOrderRequest, order_pb2.QuoteCheckoutRequest,
                                     order_pb2.RequestRefundRequest, order_pb2.CreateRefundRequest])
def test_the_protos_state_the_same_numbers(message):
    assert _rules(message, "lines").max_items == limits.MAX_LINES
    line = message.DESCRIPTOR.fields_by_name["lines"].message_type
    quantity = field_rules.rules_of(line.fields_by_name["quantity"])
    assert (quantity.min, quantity.max) == (1, limits.MAX_LINE_QUANTITY)


def _order_fields(lines) -> set[str]:
    v = Violations()
    checkout.check_lines(v, lines)
    return {item.field for item in v.items}


def _catalog_fields(lines) -> set[str]:
    when = datetime.now(timezone.utc)
    try:
        validation.reserve(validation.ReserveStock("rsv_1", "ord_1", lines, when))
    except InvalidArgument as error:
        return {item.field for item in error.violations}
    return set()


def _return_fields(lines) -> set[str]:
    try:
        validation.return_stock(validation.ReturnStock("ret-1", "ord_1", lines))
    except InvalidArgument as error:
        return {item.field for item in error.violations}
    return set()


@pytest.mark.parametrize("check", [_order_fields, _catalog_fields, _return_fields])
def test_order_and_catalog_take_and_refuse_the_same_lines(check):
    most = [(new_id("sku"), limits.MAX_LINE_QUANTITY) for _ in range(limits.MAX_LINES)]
    assert check(most) == set()
    assert check(most + [(new_id("sku"), 1)]) == {"lines"}
    assert check([(new_id("sku"), limits.MAX_LINE_QUANTITY + 1)]) == {"lines[0].quantity"}
    assert check([(new_id("sku"), 0)]) == {"lines[0].quantity"}
