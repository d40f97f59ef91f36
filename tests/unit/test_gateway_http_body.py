"""A route answering google.api.HttpBody: its data goes out raw with its content type, a CSV
as an attachment with a name from the RPC and the request; the OpenAPI document states the
media type."""
from __future__ import annotations

from types import SimpleNamespace

from google.api import httpbody_pb2
from siyu.order.v1 import order_pb2

from gateway import http_body, openapi
from gateway.routes import Route, parse_template
from siyu_kit.access import Rule


def test_only_httpbody_is_a_file():
    assert http_body.is_http_body(httpbody_pb2.HttpBody.DESCRIPTOR)
    assert not http_body.is_http_body(order_pb2.GetOrderResponse.DESCRIPTOR)


def test_a_csv_goes_out_raw_as_an_attachment_named_after_the_rpc_and_the_request():
    data = "日期,销售额\r\n2026-12-01,123.45\r\n".encode()
    reply = httpbody_pb2.HttpBody(content_type="text/csv; charset=utf-8", data=data)
    request = order_pb2.GetOrderRequest(order_id="ord_01J0000000000000000000000A")
    response = http_body.response(reply, "ExportSettlementStatement", request)
    assert response.body == data
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        'attachment; filename="settlement-statement-ord_01J0000000000000000000000A.csv"')


def test_another_file_goes_out_inline_and_an_empty_type_is_octet_stream():
    png = httpbody_pb2.HttpBody(content_type="image/png", data=b"\x89PNG")
    response = http_body.response(png, "GetQrCode", order_pb2.GetOrderRequest())
    assert response.body == b"\x89PNG" and response.headers["content-type"] == "image/png"
    assert "content-disposition" not in response.headers
    bare = http_body.response(httpbody_pb2.HttpBody(data=b"x"), "GetQrCode", order_pb2.GetOrderRequest())
    assert bare.headers["content-type"] == "application/octet-stream"


def test_a_file_name_keeps_only_safe_characters():
    request = order_pb2.GetOrderRequest(order_id='../"x"; rm')
    name = http_body.attachment_name("DownloadLedger", request, "csv")
    assert name == "ledger-x_rm.csv"


def _route(method: str) -> Route:
    descriptor = SimpleNamespace(input_type=order_pb2.GetOrderRequest.DESCRIPTOR,
                                 output_type=httpbody_pb2.HttpBody.DESCRIPTOR)
    return Route(backend="order", service="siyu.order.v1.OrderService", method_name=method, http_method="GET",
                 template=parse_template("/v1/finance/{order_id}:export"), body="", rule=Rule("STAFF", ("FINANCE",)),
                 request_class=order_pb2.GetOrderRequest, response_class=httpbody_pb2.HttpBody,
                 method_descriptor=descriptor)


def test_the_openapi_document_describes_the_file_by_its_media_type():
    schemas = openapi._Schemas({"siyu.order.v1.OrderService.ExportThing": "The day's statement as CSV.",
                                "siyu.order.v1.OrderService.GetThing": "The file."})
    csv = openapi._operation(_route("ExportThing"), schemas)["responses"]["200"]
    assert csv["content"] == {"text/csv": {"schema": {"type": "string", "format": "binary"}}}
    other = openapi._operation(_route("GetThing"), schemas)["responses"]["200"]
    assert list(other["content"]) == ["application/octet-stream"]
