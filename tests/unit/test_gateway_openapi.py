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
        {"name": "order_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    assert pay["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/siyu.order.v1.PayOrderRequest"}
    assert pay["security"] == [{"apiKey": [], "bearer": []}]
    listing = ops[("/v1/products", "GET")]
    query = {p["name"]: p for p in listing["parameters"] if p["in"] == "query"}
    assert set(query) == {"keyword", "category_id", "tag", "page_size", "page_token", "min_price", "max_price",
                          "in_stock_only", "sort"}
    assert query["page_size"]["schema"] == {"type": "integer", "format": "int32"}
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
    assert product["version"] == {"type": "string", "format": "int64"}
    assert product["created_at"] == {"type": "string", "format": "date-time"}
    assert product["status"] == {"$ref": "#/components/schemas/siyu.catalog.v1.ProductStatus"}
    assert product["skus"] == {"type": "array", "items": {"$ref": "#/components/schemas/siyu.catalog.v1.Sku"}}
    assert schemas["siyu.catalog.v1.Sku"]["properties"]["attributes"] == {
        "type": "object", "additionalProperties": {"type": "string"}}
    assert schemas["siyu.catalog.v1.ProductStatus"] == {"type": "string", "enum": [
        "PRODUCT_STATUS_UNSPECIFIED", "PRODUCT_STATUS_DRAFT", "PRODUCT_STATUS_ON_SHELF", "PRODUCT_STATUS_OFF_SHELF"]}
    assert schemas["siyu.common.v1.Money"]["properties"]["amount"]["type"] == "string"
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
