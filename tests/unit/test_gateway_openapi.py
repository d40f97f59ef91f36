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


def test_every_operation_is_described_by_its_rpc_comment(doc):
    comments = openapi.comments()
    table = Table.from_protos()
    ops = _operations(doc)
    for route in table.routes:
        op = ops[(route.template.openapi_path, route.http_method)]
        text = comments.get(f"{route.service}.{route.method_name}")
        assert text, f"{route.service}.{route.method_name} has no comment in its proto"
        assert op["description"].startswith(text)
    pay = ops[("/v1/orders/{order_id}:pay", "POST")]
    assert pay["description"] == ("Starts a payment of the whole payable amount (with use_balance: the member's balance "
                                  "first, the rest through the method). Idempotent by idempotency_key.")
    # Comment lines are joined into prose; staff roles follow the comment.
    stock = ops[("/v1/staff/skus/{sku_id}/stock", "GET")]
    assert "\n" not in stock["description"].split("\n\n")[0]
    assert stock["description"].endswith("Staff roles: OPERATOR (OWNER always allowed).")
    assert {t["name"] for t in doc["tags"]} == {"CatalogService", "ContentService", "MemberService", "OrderService"}
    assert all(t["description"] for t in doc["tags"])


def test_every_commented_field_message_and_enum_is_described(doc):
    comments = openapi.comments()
    schemas = doc["components"]["schemas"]
    checked = 0
    for name, schema in schemas.items():
        if name in comments and not name.endswith("ErrorReason"):
            assert schema["description"].startswith(comments[name]), name
            checked += 1
        for field, prop in schema.get("properties", {}).items():
            if f"{name}.{field}" in comments:
                assert prop["description"].startswith(comments[f"{name}.{field}"]), f"{name}.{field}"
                checked += 1
    assert checked > 60
    money = schemas["siyu.common.v1.Money"]
    assert money["description"] == "An amount of money in integer minor units (fen for CNY). Never a float."
    # A field's comment goes first, the rule's own description after it.
    assert money["properties"]["currency"]["description"] == "ISO 4217 code; CNY when empty. (only CNY)"
    # A message field keeps its $ref beside the description.
    assert schemas["siyu.order.v1.PlaceOrderRequest"]["properties"]["attribution"] == {
        "$ref": "#/components/schemas/siyu.common.v1.Attribution",
        "description": "Persona, content, live session and share code; the channel comes from the API key."}
    # Enum values with comments are listed in the enum's description.
    assert "- `PRODUCT_SORT_NEWEST`: Newest first (the default)." in schemas["siyu.catalog.v1.ProductSort"][
        "description"]
    # Query and path parameters carry their field's comment beside an unchanged schema.
    listing = {p["name"]: p for p in _operations(doc)[("/v1/products", "GET")]["parameters"]}
    assert listing["page_size"]["description"] == "1..100, default 20."
    assert listing["keyword"]["description"] == "Matches titles; Chinese matches without spaces."


def test_error_reasons_are_an_enum_with_descriptions(doc):
    from siyu_kit import reasons

    reason = doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["reason"]
    assert reason["type"] == "string"
    assert set(reason["enum"]) == set(reasons.declared())
    assert {"OUT_OF_STOCK", "VERSION_CONFLICT", "INVALID_FIELDS", "TOKEN_EXPIRED", "NOT_FOUND"} <= set(reason["enum"])
    assert not {"VERSION_MISMATCH", "INSUFFICIENT_STOCK", "ILLEGAL_STATUS_TRANSITION"} & set(reason["enum"])
    described = dict(zip(reason["enum"], reason["x-enum-descriptions"]))
    assert all(described.values())
    assert described["CART_EMPTY"] == "No lines were given and no item of the cart is selected."
    assert "- `CART_EMPTY`: No lines were given and no item of the cart is selected." in reason["description"]
    # Each operation lists the reasons its service may give: its own, those it relays, the common ones.
    ops = _operations(doc)
    place = ops[("/v1/orders", "POST")]["x-siyu-reasons"]
    assert {"CART_EMPTY", "OUT_OF_STOCK", "SOLD_OUT", "INVALID_FIELDS", "DEADLINE_TOO_SHORT"} <= set(place)
    listing = ops[("/v1/products", "GET")]["x-siyu-reasons"]
    assert "OUT_OF_STOCK" in listing and "CART_EMPTY" not in listing and "INVALID_FIELDS" in listing
    login = ops[("/v1/staff/login", "POST")]["x-siyu-reasons"]
    assert {"LOGIN_FAILED", "LOGIN_LOCKED"} <= set(login) and "OUT_OF_STOCK" not in login
    assert all(set(op["x-siyu-reasons"]) <= set(reason["enum"]) for op in ops.values())


def test_the_docs_page_shows_descriptions(doc):
    page = openapi.docs_page(doc)
    assert "Starts a payment of the whole payable amount (with use_balance" in page


def test_error_responses_are_the_statuses_of_the_google_rpc_mapping(doc):
    from gateway.errors import HTTP_BY_CODE

    statuses = {str(s) for s in HTTP_BY_CODE.values()}
    for op in _operations(doc).values():
        errors = set(op["responses"]) - {"200", "default"}
        assert errors <= statuses and "400" in errors and "412" not in errors
    assert "Error412" not in doc["components"]["responses"]
    assert HTTP_BY_CODE["FAILED_PRECONDITION"] == 400 and HTTP_BY_CODE["UNIMPLEMENTED"] == 501
