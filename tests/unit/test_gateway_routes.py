"""Path templates, the route table from the protos, and query/path/body → request fields."""
from __future__ import annotations

import pytest
from google.protobuf import json_format

from gateway import routes
from gateway.routes import FieldError, Table, parse_error_field, parse_template, query_to_dict
from siyu.catalog.v1 import catalog_pb2
from siyu.order.v1 import order_pb2
from siyu_kit import access
from siyu_kit.config import SERVICE_NAMES


@pytest.fixture(scope="module")
def table() -> Table:
    return Table.from_protos()


def test_simple_variable_and_custom_verb():
    t = parse_template("/v1/orders/{order_id}:pay")
    assert t.verb == "pay"
    assert t.match("/v1/orders/ord_1:pay") == {"order_id": "ord_1"}
    assert t.match("/v1/orders/ord_1:cancel") is None
    assert t.match("/v1/orders/ord_1") is None
    assert t.match("/v1/orders/a/b:pay") is None


def test_variable_with_segments_and_percent_decoding():
    t = parse_template("/v1/{name=shelves/*/books/*}")
    assert t.match("/v1/shelves/s1/books/b%2F2") == {"name": "shelves/s1/books/b/2"}
    assert t.match("/v1/shelves/s1") is None
    assert t.openapi_path == "/v1/{name}"
    rest = parse_template("/v1/files/{path=**}:download")
    assert rest.match("/v1/files/a/b/c.txt:download") == {"path": "a/b/c.txt"}


def test_nested_field_variable():
    t = parse_template("/v1/a/{order.order_id}/b")
    assert t.variables == ("order.order_id",)
    assert t.match("/v1/a/x/b") == {"order.order_id": "x"}


@pytest.mark.parametrize("bad", ["v1/x", "/v1/{}", "/v1/{a b}", "/v1/x:a:b", "/v1/x y"])
def test_malformed_templates_are_rejected(bad):
    with pytest.raises(routes.TemplateError):
        parse_template(bad)


def _annotated_methods():
    """Every (service, method) with an http annotation and a non-INTERNAL rule, read
    independently of the gateway's table."""
    from google.api import annotations_pb2
    found = set()
    for _, service in routes.discover(SERVICE_NAMES):
        for m in service.methods:
            if m.GetOptions().HasExtension(annotations_pb2.http) and access.rule_of(m).access != "INTERNAL":
                found.add((service.full_name, m.name))
    return found


def test_table_exposes_every_annotated_rpc_and_no_internal_one(table):
    exposed = {(r.service, r.method_name) for r in table.routes}
    assert exposed == _annotated_methods()
    assert ("siyu.member.v1.MemberService", "ResolveApiKey") not in exposed
    assert ("siyu.catalog.v1.CatalogService", "ReserveStock") not in exposed
    assert all(r.rule.access != "INTERNAL" for r in table.routes)


def test_match_picks_method_and_verb(table):
    route, values, _ = table.match("POST", "/v1/orders/ord_9:cancel")
    assert (route.method_name, values) == ("CancelOrder", {"order_id": "ord_9"})
    route, values, _ = table.match("GET", "/v1/orders/ord_9")
    assert (route.method_name, values) == ("GetOrder", {"order_id": "ord_9"})
    route, _, _ = table.match("GET", "/v1/orders")
    assert route.method_name == "ListMyOrders"
    route, _, _ = table.match("POST", "/v1/orders")
    assert route.method_name == "PlaceOrder"


def test_wrong_method_and_unknown_path(table):
    assert table.match("DELETE", "/v1/products") == (None, {}, True)
    assert table.allowed_methods("/v1/products") == ["GET"]
    # A verb path never falls back to a verb-less route of another method.
    assert table.match("GET", "/v1/orders/o1:pay") == (None, {}, True)
    assert table.match("GET", "/v1/nothing") == (None, {}, False)


def test_allowed_methods_of_an_action_path_are_only_its_verb_routes(table):
    # GET /v1/orders/{order_id} would match "o1:pay" as an id, but GET is refused there.
    assert table.allowed_methods("/v1/orders/o1:pay") == ["POST"]
    assert table.allowed_methods("/v1/staff/skus/s1/stock:audit") == ["GET"]
    assert table.allowed_methods("/v1/orders/o1") == ["GET"]
    assert table.allowed_methods("/v1/orders") == ["GET", "POST"]


def test_query_scalars_repeated_enums_and_nesting():
    d = query_to_dict(catalog_pb2.UpsertProductRequest.DESCRIPTOR,
                      [("tags", "a"), ("tags", "b"), ("status", "PRODUCT_STATUS_ON_SHELF"), ("title", "茶")])
    msg = json_format.ParseDict(d, catalog_pb2.UpsertProductRequest())
    assert list(msg.tags) == ["a", "b"]
    assert msg.status == catalog_pb2.PRODUCT_STATUS_ON_SHELF
    assert msg.title == "茶"
    d = query_to_dict(order_pb2.PlaceOrderRequest.DESCRIPTOR,
                      [("attribution.channel", "CHANNEL_H5"), ("attribution.share_code", "s1")])
    msg = json_format.ParseDict(d, order_pb2.PlaceOrderRequest())
    assert msg.attribution.share_code == "s1"
    assert msg.attribution.channel == 2
    d = query_to_dict(catalog_pb2.ListProductsRequest.DESCRIPTOR, [("page_size", "7")])
    assert json_format.ParseDict(d, catalog_pb2.ListProductsRequest()).page_size == 7


@pytest.mark.parametrize("params,field", [
    ([("nope", "1")], "nope"),
    ([("attribution.nope", "1")], "attribution.nope"),
    ([("lines.sku_id", "x")], "lines.sku_id"),  # repeated messages cannot come from a query
    ([("remark", "a"), ("remark", "b")], "remark"),
    ([("attribution", "x")], "attribution"),
])
def test_bad_query_parameters_name_the_field(params, field):
    with pytest.raises(FieldError) as caught:
        query_to_dict(order_pb2.PlaceOrderRequest.DESCRIPTOR, params)
    assert caught.value.field == field


def test_query_cannot_set_a_path_bound_field():
    with pytest.raises(FieldError) as caught:
        query_to_dict(order_pb2.GetOrderRequest.DESCRIPTOR, [("order_id", "x")], skip={"order_id"})
    assert caught.value.field == "order_id"


def test_bool_query_values():
    from google.protobuf import descriptor_pb2  # noqa: F401 - a bool field from a real message
    d = query_to_dict(descriptor_pb2.FieldOptions.DESCRIPTOR, [("deprecated", "true"), ("lazy", "false")])
    assert d == {"deprecated": True, "lazy": False}
    for bad in ("yes", "1", "0", "TRUE", "False", ""):
        with pytest.raises(FieldError) as caught:
            query_to_dict(descriptor_pb2.FieldOptions.DESCRIPTOR, [("deprecated", bad)])
        assert caught.value.description == "must be true or false"


def test_path_values_override_the_body():
    data = {"order_id": "from-body", "idempotency_key": "k"}
    routes.set_path(data, "order_id", "from-path")
    assert data["order_id"] == "from-path"
    nested: dict = {}
    routes.set_path(nested, "a.b", "v")
    assert nested == {"a": {"b": "v"}}


def _parse_error(data: dict, message) -> str:
    with pytest.raises(json_format.ParseError) as caught:
        json_format.ParseDict(data, message)
    return str(caught.value)


@pytest.mark.parametrize("data,field", [
    ({"nope": 1}, "nope"),
    ({"skus": [{"list_pricex": {}}]}, "skus[0].list_pricex"),
    ({"status": "BAD"}, "status"),
    ({"tags": "a"}, "tags"),
    ({"skus": [{"list_price": {"amount": "zz"}}]}, "skus.list_price.amount"),
])
def test_parse_errors_name_the_field(data, field):
    found, description = parse_error_field(_parse_error(data, catalog_pb2.UpsertProductRequest()))
    assert found == field
    assert description


def _every_route_in_order(table: Table, method: str, raw_path: str):
    """What `match` answers when it tries every route of the table in turn."""
    path_known = verb_matched = False
    for route in table.routes:
        if verb_matched and not route.template.verb:
            break
        values = route.template.match(raw_path)
        if values is None:
            continue
        if route.http_method == method:
            return route, values, True
        path_known = True
        verb_matched = verb_matched or bool(route.template.verb)
    return None, {}, path_known


def test_trying_only_the_routes_of_a_paths_head_answers_as_trying_them_all(table):
    import re

    paths = set()
    for route in table.routes:
        concrete = re.sub(r"\{[^}]*\}", "x1", route.template.text)
        paths |= {concrete, concrete + ":nope", concrete.replace("/x1", "/x1:cancel"), concrete + "/extra"}
    paths |= {"/", "/v1", "/v1/", "/v2/orders", "/v1/unknown/x1", "//v1/orders"}
    for path in sorted(paths):
        for method in ("GET", "POST", "PATCH", "DELETE"):
            assert table.match(method, path) == _every_route_in_order(table, method, path), (method, path)
        assert table.allowed_methods(path) == sorted(
            {r.http_method for r in table.routes if r.template.match(path) is not None
             and (r.template.verb or not any(o.template.verb and o.template.match(path) is not None
                                              for o in table.routes))}), path
