"""The product-detail screen's pure parts: the live status of a product's sessions, and
its operation in the API document (registered on the app, every schema it names defined)."""
from __future__ import annotations

import json
import re

from siyu.common.v1 import live_pb2
from siyu.content.v1 import content_pb2

from gateway import product_detail
from gateway.app import create_app


def sessions(*states) -> list:
    return [content_pb2.ProductLiveSession(live_session=content_pb2.LiveSession(state=s)) for s in states]


def test_live_status_is_live_before_scheduled_before_none():
    assert product_detail.live_status(sessions(live_pb2.LIVE_SESSION_STATE_SCHEDULED,
                                               live_pb2.LIVE_SESSION_STATE_LIVE)) == "LIVE"
    assert product_detail.live_status(sessions(live_pb2.LIVE_SESSION_STATE_SCHEDULED)) == "SCHEDULED"
    assert product_detail.live_status(sessions(live_pb2.LIVE_SESSION_STATE_ENDED)) == "NONE"
    assert product_detail.live_status([]) == "NONE"


def test_the_screen_is_in_the_api_document_and_matched_before_the_transcoded_routes():
    app = create_app()
    assert app.router.routes[0].path == product_detail.PATH
    doc = app.state.gateway.openapi_doc
    operation = doc["paths"][product_detail.PATH]["get"]
    assert operation["x-siyu-access"] == "CHANNEL" and "CATALOG_UNAVAILABLE" in operation["x-siyu-reasons"]
    refs = set(re.findall(r'"#/components/(schemas|responses)/([^"]+)"', json.dumps(operation)))
    assert refs and all(name in doc["components"][kind] for kind, name in refs)
    assert product_detail.PATH in app.state.gateway.docs_html


def test_the_screen_keeps_every_part_that_answered_and_names_the_others():
    from siyu.catalog.v1 import catalog_pb2

    product = catalog_pb2.GetProductResponse(product=catalog_pb2.Product(product_id="prd_1"))
    sale = catalog_pb2.FlashSale(flash_sale_id="fls_1", product_id="prd_1")
    live = content_pb2.ListProductLiveSessionsResponse(sessions=[content_pb2.ProductLiveSession(
        live_session=content_pb2.LiveSession(live_session_id="liv_1", state=live_pb2.LIVE_SESSION_STATE_LIVE),
        items=[content_pb2.LiveLineUpItem(sku_id="sku_1", product_id="prd_1")])])
    contents = content_pb2.ListProductContentsResponse(contents=[content_pb2.Content(content_id="cnt_1")])
    whole = product_detail.assemble(product, [sale], live, contents)
    assert whole["unavailable"] == [] and whole["live_status"] == "LIVE"
    assert [s["live_session"]["live_session_id"] for s in whole["live_sessions"]] == ["liv_1"]
    assert [s["flash_sale_id"] for s in whole["flash_sales"]] == ["fls_1"]
    assert [c["content_id"] for c in whole["contents"]] == ["cnt_1"] and whole["personas"] == []
    partial = product_detail.assemble(product, TimeoutError(), RuntimeError("down"), contents)
    assert partial["unavailable"] == ["flash_sales", "live"] and partial["product"]["product_id"] == "prd_1"
    assert "flash_sales" not in partial and "live_status" not in partial and "live_sessions" not in partial
