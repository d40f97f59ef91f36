"""The OpenAPI document is generated from the same descriptors as the routes."""
from __future__ import annotations

import pytest

from gateway import openapi
from gateway.routes import Table


@pytest.fixture(scope="module")
def doc():
    return openapi.document(Table.from_protos())


def _operations(doc):
    return {(path, method.upper()): op for path, ops in doc["paths"].items() for method, op in ops.items()}


def test_every_route_and_no_internal_one(doc):
    table = Table.from_protos()
    ops = _operations(doc)
    assert set(ops) == {(r.template.openapi_path, r.http_method) for r in table.routes}
    ids = {op["operationId"] for op in ops.values()}
    assert "MemberService_ResolveApiKey" not in ids
    assert "CatalogService_ReserveStock" not in ids
    assert {"OrderService_PayOrder", "CatalogService_ListProducts", "MemberService_StaffLogin"} <= ids
    assert all(op["x-siyu-access"] != "INTERNAL" for op in ops.values())


def test_parameters_and_bodies(doc):
    ops = _operations(doc)
    pay = ops[("/v1/orders/{order_id}:pay", "POST")]
    assert [p for p in pay["parameters"] if p["in"] == "path"] == [
        {"name": "order_id", "in": "path", "required": True,
         "schema": {"type": "string", "pattern": "^ord_[0-9A-HJKMNP-TV-Z]{26}$", "minLength": 1,
                    "description": "an ord_ id"}}]
    assert pay["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/siyu.order.v1.PayOrderRequest"}
    assert pay["security"] == [{"apiKey": [], "bearer": []}]
    listing = ops[("/v1/products", "GET")]
    query = {p["name"]: p for p in listing["parameters"] if p["in"] == "query"}
    assert set(query) == {"keyword", "category_id", "tag", "page_size", "page_token", "min_price", "max_price",
                          "in_stock_only", "sort"}
    assert query["page_size"]["schema"] == {"type": ["integer", "string"], "format": "int32", "minimum": 0,
                                            "maximum": 100, "pattern": "^(?:[0-9]|[1-9][0-9]{1}|100)$"}
    assert query["in_stock_only"]["schema"] == {"type": "boolean"}
    assert "requestBody" not in listing
    assert listing["security"] == [{"apiKey": []}]
    assert ops[("/v1/staff/login", "POST")]["security"] == []
    stock = ops[("/v1/staff/skus/{sku_id}/stock", "GET")]
    assert stock["security"] == [{"bearer": []}] and stock["x-siyu-roles"] == ["OPERATOR"]
    assert listing["responses"]["400"] == {"$ref": "#/components/responses/Error400"}


def test_schemas_follow_the_proto3_json_mapping(doc):
    schemas = doc["components"]["schemas"]
    product = schemas["siyu.catalog.v1.Product"]["properties"]
    assert product["version"]["type"] == ["integer", "string"] and product["version"]["format"] == "int64"
    assert product["created_at"] == {"type": "string", "format": "date-time"}
    assert product["status"] == {"$ref": "#/components/schemas/siyu.catalog.v1.ProductStatus"}
    assert product["skus"] == {"type": "array", "items": {"$ref": "#/components/schemas/siyu.catalog.v1.Sku"}}
    assert schemas["siyu.catalog.v1.Sku"]["properties"]["attributes"] == {
        "type": "object", "additionalProperties": {"type": "string"}}
    assert schemas["siyu.catalog.v1.ProductStatus"] == {"type": "string", "enum": [
        "PRODUCT_STATUS_UNSPECIFIED", "PRODUCT_STATUS_DRAFT", "PRODUCT_STATUS_ON_SHELF", "PRODUCT_STATUS_OFF_SHELF"]}
    assert schemas["siyu.common.v1.Money"]["properties"]["amount"]["type"] == ["integer", "string"]
    # Every $ref resolves.
    text = repr(doc)
    import re
    for ref in set(re.findall(r"#/components/schemas/([\w.]+)", text)):
        assert ref in schemas, ref
    assert "Error" in schemas


def test_security_schemes_and_docs_page(doc):
    schemes = doc["components"]["securitySchemes"]
    assert schemes["apiKey"] == {"type": "apiKey", "in": "header", "name": "X-Api-Key",
                                 "description": schemes["apiKey"]["description"]}
    assert schemes["bearer"]["scheme"] == "bearer"
    assert doc["openapi"].startswith("3.1")
    page = openapi.docs_page(doc)
    assert "/v1/orders/{order_id}:pay" in page and "ResolveApiKey" not in page
    assert "<script" not in page and "http://" not in page and "https://" not in page


def test_declared_rules_become_required_fields_patterns_and_bounds(doc):
    schemas = doc["components"]["schemas"]
    place = schemas["siyu.order.v1.PlaceOrderRequest"]
    assert place["required"] == ["idempotency_key", "lines"]
    assert place["properties"]["lines"]["minItems"] == 1 and place["properties"]["lines"]["maxItems"] == 50
    assert place["properties"]["idempotency_key"] == {"type": "string", "minLength": 1, "maxLength": 64}
    line = schemas["siyu.order.v1.OrderLineInput"]
    # A quantity's bounds exclude its unset 0, so it is required.
    assert line["required"] == ["sku_id", "quantity"]
    assert line["properties"]["quantity"]["minimum"] == 1 and line["properties"]["quantity"]["maximum"] == 999
    # An optional id may be left empty.
    assert schemas["siyu.common.v1.Attribution"]["properties"]["persona_id"]["pattern"] == \
        "^$|^per_[0-9A-HJKMNP-TV-Z]{26}$"
    amount = schemas["siyu.common.v1.Money"]["properties"]["amount"]
    assert (amount["minimum"], amount["maximum"]) == (0, 10_000_000_000)
    # The status a product is set to cannot be left unspecified; the enum says so.
    status = schemas["siyu.catalog.v1.SetProductStatusRequest"]["properties"]["status"]
    assert status == {"type": "string", "enum": ["PRODUCT_STATUS_DRAFT", "PRODUCT_STATUS_ON_SHELF",
                                                  "PRODUCT_STATUS_OFF_SHELF"]}
    # A required integer that allows negatives excludes only 0.
    delta = schemas["siyu.catalog.v1.AdjustStockRequest"]["properties"]["delta"]
    assert delta["not"] == {"enum": [0, "0"]} and delta["minimum"] == -1_000_000
    attributes = schemas["siyu.catalog.v1.SkuInput"]["properties"]["attributes"]
    assert attributes["maxProperties"] == 10 and attributes["additionalProperties"]["maxLength"] == 64


@pytest.mark.parametrize("low, high", [(0, 0), (1, 999), (0, 10_000_000_000), (-1_000_000, 1_000_000), (-9, -3),
                                       (-2**63, 2**63 - 1), (0, 2**32 - 1), (17, 604_800)])
def test_integer_pattern_matches_exactly_the_range(low, high):
    import re
    from hypothesis import given, settings, strategies as st

    pattern = re.compile(openapi.integer_pattern(low, high))

    @settings(max_examples=300, derandomize=True, deadline=None)
    @given(st.integers(min_value=low - 1000, max_value=high + 1000) | st.sampled_from([low, high, low - 1, high + 1]))
    def check(n):
        assert bool(pattern.fullmatch(str(n))) == (low <= n <= high)

    check()
    # Only the canonical form: no sign on positives, no leading zeros, no "-0".
    for text in ("+1", "01", "-0", " 1", "1.0"):
        assert not pattern.fullmatch(text)
