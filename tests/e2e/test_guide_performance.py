"""Guide performance over HTTP: a guide's share code opened by a signed-in member is told
to the member service (ShareCodeOpened on the stream), an order attributed to the guide's
persona counts for the guide, a refund takes it back, a guide reads only their own numbers
and managers read every guide's and every store's; each new route refuses bad input,
other merchants and the wrong role."""
from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import nats
from siyu.content.v1 import events_pb2

from siyu_kit.events.outbox import decode
from tests.support import wait_until
from tests.support.content import assign, new_guide, new_persona
from tests.support.shop import ok, refused, staff_with


async def _opened_events(nats_url: str, code: str) -> list[events_pb2.ShareCodeOpened]:
    """The ShareCodeOpened events of one code on the content stream."""
    nc = await nats.connect(nats_url)
    try:
        sub = await nc.jetstream().pull_subscribe("siyu.content.share_code.opened", stream="SIYU_CONTENT")
        pending = (await sub.consumer_info()).num_pending
        found = []
        while pending > 0:
            batch = await sub.fetch(min(pending, 256), timeout=10)
            for msg in batch:
                event = events_pb2.ShareCodeOpened()
                decode(msg.data).payload.Unpack(event)
                if event.code == code:
                    found.append(event)
            pending -= len(batch)
        return found
    finally:
        await nc.close()


def _days() -> tuple[str, str]:
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    # A range around today, so a run across the merchant's midnight still sees every count.
    return (today - timedelta(days=1)).isoformat(), (today + timedelta(days=1)).isoformat()


def test_a_guides_share_code_binds_and_sells_and_the_guide_sees_their_numbers(shop, other_shop, stack):
    first_day, last_day = _days()
    span = {"from_day": first_day, "to_day": last_day}
    guide, guide_id = new_guide(shop)
    persona = new_persona(shop)
    assign(shop, persona["persona_id"], guide_id)
    code = ok(shop.call("POST", "/v1/staff/share-codes", channel=None, token=guide, json={
        "target_kind": "SHARE_TARGET_KIND_PERSONA", "target_id": persona["persona_id"]}))["share_code"]["code"]

    # An anonymous open tells nothing; a signed-in member's open is told with its sharer.
    ok(shop.call("POST", f"/v1/share-codes/{code}:open", json={}))
    login = shop.login(f"union-{uuid.uuid4().hex[:8]}")
    member, member_id = login["access_token"], login["member"]["member_id"]
    ok(shop.call("POST", f"/v1/share-codes/{code}:open", token=member, json={}))
    [opened] = wait_until(lambda: asyncio.run(_opened_events(stack.nats_url, code)), timeout=15, interval=0.3,
                          message="ShareCodeOpened on the stream")
    assert (opened.sharer_id, opened.member_id) == (guide_id, member_id)

    # The member buys through the code: the order is the guide's (their persona's).
    sku = shop.new_sku(stock=5, price=6000)
    order = ok(shop.call("POST", "/v1/orders", token=member, json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": "1"}],
        "attribution": {"share_code": code}}))["order"]
    shop.pay(member, order["order_id"])

    def mine(**want):
        body = ok(shop.call("GET", "/v1/staff/guide-performance/me", channel=None, token=guide, params=span))
        total = body["total"]
        return body if all(str(total.get(k, "0")) == str(v) for k, v in want.items()) else None

    body = wait_until(lambda: mine(orders=1, paid_orders=1), timeout=20, interval=0.2,
                      message="the paid order counted for the guide")
    assert body["guide_id"] == guide_id and len(body["days"]) == 3
    assert body["total"]["gmv"]["amount"] == "6000"
    assert body["total"]["unique_viewers"] == "1" and body["total"]["conversion_rate_bp"] == "10000"

    # A full refund takes the sale back and counts a refund.
    refund = ok(shop.call("POST", f"/v1/orders/{order['order_id']}/refunds", token=member, json={
        "idempotency_key": uuid.uuid4().hex, "reason": "不合适",
        "lines": [{"line_id": order["lines"][0]["line_id"], "quantity": "1"}]}))["refund"]
    ok(shop.as_staff("POST", f"/v1/staff/refunds/{refund['refund_id']}:approve", json={}))
    body = wait_until(lambda: mine(refunds=1), timeout=20, interval=0.2, message="the refund counted")
    assert (body["total"].get("gmv", {}).get("amount", "0"), body["total"].get("paid_orders", "0"),
            body["total"]["refunded"]["amount"]) == ("0", "0", "6000")

    # The guide's funnel report is theirs alone; managers read every guide.
    report = ok(shop.call("GET", "/v1/staff/funnel-report", channel=None, token=guide, params={
        "dimension": "FUNNEL_DIMENSION_GUIDE", "ref_id": guide_id, **span}))
    assert report["total"]["refunds"] == "1"
    other_guide, other_id = new_guide(shop)
    refused(shop.call("GET", "/v1/staff/funnel-report", channel=None, token=other_guide, params={
        "dimension": "FUNNEL_DIMENSION_GUIDE", "ref_id": guide_id, **span}), 403, "GUIDE_NOT_SELF")
    operator = staff_with(shop, "OPERATOR")
    listed = ok(shop.call("GET", "/v1/staff/guide-performance", channel=None, token=operator, params=span))
    assert [g["total"]["refunds"] for g in listed["guides"] if g["guide_id"] == guide_id] == ["1"]
    assert ok(shop.call("GET", "/v1/staff/funnel-report", channel=None, token=operator, params={
        "dimension": "FUNNEL_DIMENSION_GUIDE", "ref_id": guide_id, **span}))["total"] == report["total"]
    # The other merchant sees none of it.
    assert not any(g["guide_id"] == guide_id for g in ok(other_shop.as_staff(
        "GET", "/v1/staff/guide-performance", params=span)).get("guides", []))
    refused(other_shop.as_staff("GET", "/v1/staff/funnel-report", params={
        "dimension": "FUNNEL_DIMENSION_GUIDE", "ref_id": guide_id, **span}), 404, "FUNNEL_NOT_FOUND")
    # No order of this merchant named a store yet: per store, nothing (and 404 for one).
    assert ok(shop.as_staff("GET", "/v1/staff/store-performance", params=span)).get("stores", []) == []

    _every_route_refuses(shop, guide, operator, span)


def _every_route_refuses(shop, guide: str, operator: str, span: dict) -> None:
    for table in (BAD, DENIED):
        for rpc, case in table.items():
            case(shop, guide, operator, span)
    # A store nothing was counted for: 404.
    refused(shop.call("GET", "/v1/staff/store-performance/SH-404", channel=None, token=operator, params=span),
            404, "FUNNEL_NOT_FOUND")
    refused(shop.call("GET", "/v1/staff/guide-performance", channel=None, token=operator, params={
        **span, "store": "SH-404"}), 404, "FUNNEL_NOT_FOUND")


def _get(shop, path: str, token: str, params: dict):
    return shop.call("GET", path, channel=None, token=token, params=params)


BAD_DAY = "2026-13-01"
# Bad input: 400 with the field.
BAD = {
    "GetMyGuidePerformance": lambda shop, guide, op, span: refused(_get(
        shop, "/v1/staff/guide-performance/me", guide, {**span, "from_day": BAD_DAY}), 400, fields={"from_day"}),
    "ListGuidePerformance": lambda shop, guide, op, span: refused(_get(
        shop, "/v1/staff/guide-performance", op, {**span, "store": "上海店", "page_size": 51}), 400,
        fields={"store", "page_size"}),
    "GetStorePerformance": lambda shop, guide, op, span: refused(_get(
        shop, "/v1/staff/store-performance/bad.store", op, {**span, "to_day": "x"}), 400, fields={"store", "to_day"}),
    "ListStorePerformance": lambda shop, guide, op, span: refused(_get(
        shop, "/v1/staff/store-performance", op, {**span, "page_token": "nope"}), 400, fields={"page_token"}),
}
# The wrong role: 403 (an operator has no performance of their own; a guide reads no one else's).
DENIED = {
    "GetMyGuidePerformance": lambda shop, guide, op, span: refused(_get(
        shop, "/v1/staff/guide-performance/me", op, span), 403),
    "ListGuidePerformance": lambda shop, guide, op, span: refused(_get(
        shop, "/v1/staff/guide-performance", guide, span), 403),
    "GetStorePerformance": lambda shop, guide, op, span: refused(_get(
        shop, "/v1/staff/store-performance/SH-01", guide, span), 403),
    "ListStorePerformance": lambda shop, guide, op, span: refused(_get(
        shop, "/v1/staff/store-performance", guide, span), 403),
}


def test_every_guide_performance_route_has_its_refusals():
    text = (Path(__file__).parents[2] / "protos/siyu/content/v1/content.proto").read_text(encoding="utf-8")
    block = text.split("  // ---- Guide performance ----", 1)[1].split("  // ---- end of Guide performance ----", 1)[0]
    assert set(re.findall(r"rpc (\w+)\(", block)) == set(BAD) == set(DENIED)
