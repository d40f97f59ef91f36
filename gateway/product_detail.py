"""The product-detail screen in one call: GET /v1/products/{product_id}/detail.

The product (with this member's price of each SKU when a member token comes along), its
flash sales that have not ended, the live sessions whose line-up has it (live status and
live prices) and the published content featuring it are asked of the catalog and the
content service in parallel, each call with its own deadline (SIYU_GATEWAY_DETAIL_TIMEOUT_S,
1.5 s by default). The product is required: NOT_FOUND is 404 (another merchant's product
too), a catalog that is away 503. Every other part whose service fails or is late is left
out of the answer and named in `unavailable`, so the screen shows the rest."""
from __future__ import annotations

import asyncio

import grpc
from google.protobuf import json_format
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from siyu.catalog.v1 import catalog_pb2
from siyu.common.v1 import live_pb2
from siyu.content.v1 import content_pb2
from siyu_kit import logging as slog, reasons
from siyu_kit.config import env_seconds

from gateway import errors
from gateway.errors import ApiError

log = slog.get("siyu.gateway.product_detail")

PATH = "/v1/products/{product_id}/detail"
# The route whose access rule and request fields the screen shares (a channel key; a member
# token optional).
PRODUCT_RPC = ("siyu.catalog.v1.CatalogService", "GetProduct")
GET_PRODUCT = "/siyu.catalog.v1.CatalogService/GetProduct"
LIST_FLASH_SALES = "/siyu.catalog.v1.CatalogService/ListFlashSales"
LIST_LIVE_SESSIONS = "/siyu.content.v1.ContentService/ListProductLiveSessions"
LIST_CONTENTS = "/siyu.content.v1.ContentService/ListProductContents"
# The optional parts, as `unavailable` names them.
FLASH_SALES, LIVE, CONTENT = "flash_sales", "live", "content"
# The product's flash sales that have not ended, soonest first: one page is plenty.
FLASH_SALES_SHOWN = 20
CONTENTS_SHOWN = 5


def timeout_s() -> float:
    return env_seconds("GATEWAY_DETAIL_TIMEOUT_S", 1.5)


def _dict(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def live_status(sessions) -> str:
    """LIVE when a session with the product is live now, SCHEDULED when one is coming, else
    NONE."""
    states = {s.live_session.state for s in sessions}
    if live_pb2.LIVE_SESSION_STATE_LIVE in states:
        return "LIVE"
    if live_pb2.LIVE_SESSION_STATE_SCHEDULED in states:
        return "SCHEDULED"
    return "NONE"


def assemble(product, flash_sales, live, contents) -> dict:
    """The screen's JSON from the answers; a part given as an exception is left out and
    named in `unavailable`."""
    body: dict = {"product": _dict(product.product)}
    unavailable = [name for name, part in ((FLASH_SALES, flash_sales), (LIVE, live), (CONTENT, contents))
                   if isinstance(part, BaseException)]
    if FLASH_SALES not in unavailable:
        body["flash_sales"] = [_dict(s) for s in flash_sales]
    if LIVE not in unavailable:
        body["live_status"] = live_status(live.sessions)
        body["live_sessions"] = [_dict(s) for s in live.sessions]
    if CONTENT not in unavailable:
        body["contents"] = [_dict(c) for c in contents.contents]
        body["personas"] = [_dict(p) for p in contents.personas]
        body["contents_next_page_token"] = contents.next_page_token
    body["unavailable"] = unavailable
    return body


class ProductDetail:
    def __init__(self, gateway):
        self.gateway = gateway
        self.timeout_s = timeout_s()
        self.route = next(r for r in gateway.table.routes if (r.service, r.method_name) == PRODUCT_RPC)

    def _call(self, backend: str, path: str, request, response_class):
        return self.gateway.channel(backend).unary_unary(path, request_serializer=type(request).SerializeToString,
                                                         response_deserializer=response_class.FromString)

    async def _ask(self, backend: str, path: str, request, response_class, metadata):
        return await asyncio.wait_for(self._call(backend, path, request, response_class)(
            request, metadata=metadata, timeout=self.timeout_s), self.timeout_s + 0.5)

    async def _flash_sales(self, product_id: str, metadata) -> list:
        page = await self._ask("catalog", LIST_FLASH_SALES,
                               catalog_pb2.ListFlashSalesRequest(product_id=product_id, page_size=FLASH_SALES_SHOWN),
                               catalog_pb2.ListFlashSalesResponse, metadata)
        return list(page.flash_sales)

    async def handle(self, request: Request) -> Response:
        gateway = self.gateway
        state = request.scope.setdefault("state", {})
        request_id = state.get("request_id", "")
        state["route"] = f"GET {PATH}"
        try:
            ctx = await gateway.admit(self.route.rule, gateway.credentials(request, gateway.settings.forwarded_hops),
                                      request_id)
            state["merchant_id"], state["channel"] = ctx.merchant_id, ctx.channel
            # The product id is read and checked as GetProduct's own (400 with field violations).
            ask = await gateway.build_request(self.route, request, {"product_id": request.path_params["product_id"]})
            product_id = ask.product_id
            md = ctx.to_metadata()
            parts = await asyncio.gather(
                self._ask("catalog", GET_PRODUCT, ask, catalog_pb2.GetProductResponse, md),
                self._flash_sales(product_id, md),
                self._ask("content", LIST_LIVE_SESSIONS,
                          content_pb2.ListProductLiveSessionsRequest(product_id=product_id),
                          content_pb2.ListProductLiveSessionsResponse, md),
                self._ask("content", LIST_CONTENTS,
                          content_pb2.ListProductContentsRequest(product_id=product_id, page_size=CONTENTS_SHOWN),
                          content_pb2.ListProductContentsResponse, md),
                return_exceptions=True)
            product, flash_sales, live, contents = parts
            if isinstance(product, grpc.aio.AioRpcError):
                raise errors.from_rpc_error(product)
            if isinstance(product, BaseException):
                raise ApiError("UNAVAILABLE", errors.GENERIC_MESSAGES["UNAVAILABLE"], "CATALOG_UNAVAILABLE")
        except ApiError as error:
            return errors.response(error, request_id)
        except Exception:  # noqa: BLE001 - the caller gets a plain 500, the log gets the trace
            log.exception("gateway.failed", request_id=request_id, route=state["route"])
            return errors.response(ApiError("INTERNAL", "internal error"), request_id)
        body = assemble(product, flash_sales, live, contents)
        for name in body["unavailable"]:
            part = {FLASH_SALES: flash_sales, LIVE: live, CONTENT: contents}[name]
            log.info("product_detail.part_unavailable", part=name, request_id=request_id,
                     error=part.code().name if isinstance(part, grpc.aio.AioRpcError) else type(part).__name__)
        return JSONResponse(body)


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def openapi_operation() -> dict:
    """The screen's operation in the API document; its parts refer to the schemas the
    transcoded routes define (GetProduct, ListFlashSales, ListProductLiveSessions,
    ListProductContents)."""
    array = lambda name: {"type": "array", "items": _ref(name)}  # noqa: E731
    return {
        "operationId": "Gateway_GetProductDetail",
        "summary": "The product-detail screen in one call",
        "tags": ["CatalogService"],
        "x-siyu-access": "CHANNEL",
        "security": [{"apiKey": []}, {"apiKey": [], "bearer": []}],
        "description": (
            "The product with its SKUs (with a member token, each SKU's member_price is what this member pays), "
            "its flash sales that have not ended, the live sessions whose line-up has it (live_status LIVE, "
            "SCHEDULED or NONE, and their live prices) and the published content featuring it (the first "
            f"{CONTENTS_SHOWN}; more from GET /v1/products/{{product_id}}/contents with contents_next_page_token). "
            "The services are asked in parallel, each with a deadline of SIYU_GATEWAY_DETAIL_TIMEOUT_S (1.5 s). "
            "The product is required: 404 when the merchant has no such product, 503 when the catalog is away. "
            "Any other part whose service fails or does not answer in time is left out and named in `unavailable` "
            "(flash_sales, live, content)."),
        "x-siyu-reasons": list(reasons.of_package("siyu.catalog.v1")),
        "parameters": [{"name": "product_id", "in": "path", "required": True, "description": "a prd_ id",
                        "schema": {"type": "string", "pattern": "^prd_[0-9A-HJKMNP-TV-Z]{26}$"}}],
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {
                "type": "object", "required": ["product", "unavailable"],
                "properties": {
                    "product": _ref("siyu.catalog.v1.Product"),
                    "flash_sales": array("siyu.catalog.v1.FlashSale"),
                    "live_status": {"type": "string", "enum": ["LIVE", "SCHEDULED", "NONE"]},
                    "live_sessions": array("siyu.content.v1.ProductLiveSession"),
                    "contents": array("siyu.content.v1.Content"),
                    "personas": array("siyu.content.v1.Persona"),
                    "contents_next_page_token": {"type": "string"},
                    "unavailable": {"type": "array", "items": {"type": "string",
                                                              "enum": [FLASH_SALES, LIVE, CONTENT]}}}}}}},
            **{status: {"$ref": f"#/components/responses/Error{status}"}
               for status in ("400", "401", "404", "429", "503", "504")},
        },
    }
