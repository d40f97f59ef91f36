"""The declared field rules, as every service checks them before a use case runs."""
from __future__ import annotations

import pytest
from siyu.catalog.v1 import catalog_pb2
from siyu.common.v1 import common_pb2
from siyu.order.v1 import order_pb2

from siyu_kit import field_rules
from siyu_kit.errors import InvalidArgument

SKU = "sku_01JAAAAAAAAAAAAAAAAAAAAAAA"


def fields(message) -> dict[str, str]:
    return {v.field: v.description for v in field_rules.violations(message)}


def test_a_valid_request_passes():
    field_rules.check(order_pb2.PlaceOrderRequest(
        idempotency_key="k1", lines=[order_pb2.OrderLineInput(sku_id=SKU, quantity=999)],
        attribution=common_pb2.Attribution(persona_id="", share_code="s")))


def test_every_broken_rule_is_named_with_the_api_path():
    found = fields(order_pb2.PlaceOrderRequest(
        lines=[order_pb2.OrderLineInput(sku_id="x", quantity=0), order_pb2.OrderLineInput(sku_id=SKU, quantity=1000)],
        attribution=common_pb2.Attribution(persona_id="per_1"), remark="r" * 501))
    assert found == {"idempotency_key": "required", "lines[0].sku_id": "a sku_ id",
                     "lines[0].quantity": "1 to 999", "lines[1].quantity": "1 to 999",
                     "attribution.persona_id": "a per_ id", "remark": "1 to 500 characters"}
    with pytest.raises(InvalidArgument) as raised:
        field_rules.check(order_pb2.PlaceOrderRequest())
    assert raised.value.reason == "INVALID_FIELDS"


def test_too_many_items_is_one_violation_not_one_per_item():
    lines = [order_pb2.OrderLineInput(sku_id="bad", quantity=0)] * 51
    assert fields(order_pb2.PlaceOrderRequest(idempotency_key="k", lines=lines)) == {"lines": "at most 50"}


def test_amounts_are_bounded_to_keep_totals_inside_int64():
    sku = catalog_pb2.SkuInput(code="S1", list_price=common_pb2.Money(amount=2**63 - 1))
    found = fields(catalog_pb2.UpsertProductRequest(code="P1", title="t", skus=[sku]))
    assert found == {"skus[0].list_price.amount": "0 to 10000000000"}
    settings = order_pb2.OrderSettings(unpaid_expiry_seconds=60, flash_sale_expiry_seconds=60, auto_confirm_days=1,
                                       shipping_fee=common_pb2.Money(amount=10_000_000_001))
    assert fields(order_pb2.UpdateOrderSettingsRequest(settings=settings)) == {
        "settings.shipping_fee.amount": "0 to 10000000000"}


def test_unknown_enum_numbers_and_map_keys_are_refused():
    found = fields(order_pb2.PayOrderRequest(order_id="ord_01JAAAAAAAAAAAAAAAAAAAAAAA", idempotency_key="k",
                                             method=77))
    assert found == {"method": "one of PAYMENT_METHOD_SANDBOX, PAYMENT_METHOD_WECHAT, PAYMENT_METHOD_BALANCE"}
    sku = catalog_pb2.SkuInput(code="S1", attributes={"$where": "x", "a.b": "y", "colour": "z" * 65})
    found = fields(catalog_pb2.UpsertProductRequest(code="P1", title="t", skus=[sku]))
    assert set(found) == {"skus[0].attributes[$where]", "skus[0].attributes[a.b]", "skus[0].attributes[colour]"}


def test_dollar_is_the_very_end_and_blank_text_is_refused():
    ok = catalog_pb2.AdjustStockRequest(sku_id=SKU, delta=-3, reason="count", idempotency_key="k")
    assert fields(ok) == {}
    assert set(fields(catalog_pb2.AdjustStockRequest(sku_id=SKU + "\n", delta=0, reason="  ",
                                                     idempotency_key="k"))) == {"sku_id", "delta", "reason"}


def test_white_space_in_a_pattern_is_ecmascripts_as_the_schema_says():
    # Python's \s also takes \x1c-\x1f and \x85, ECMAScript's (JSON Schema's) also \ufeff: a
    # value the published schema allows must not be refused, nor one it forbids taken.
    from siyu_kit.field_rules import compile_pattern
    no_space = compile_pattern(r"^[^\s]+$")
    assert no_space.match("a\x1cb") and no_space.match("a\x85b")
    assert not no_space.match("a\ufeffb") and not no_space.match("a b")
    not_blank = compile_pattern(r"^[\s\S]*\S[\s\S]*$")
    assert not_blank.match("\x1c") and not not_blank.match(" \ufeff\u3000")
    trimmed = compile_pattern(r"^\S(?:[\s\S]*\S)?$")
    assert trimmed.match("a\x85") and not trimmed.match("a\ufeff") and not trimmed.match("a\n")
