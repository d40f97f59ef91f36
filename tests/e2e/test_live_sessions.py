"""Live sessions through the gateway: a guide schedules one for their persona (not for
another's), the line-up is checked against the catalog, the session goes live, a viewer
opens the room, and orders attributed to the session pay its live prices while it is LIVE
and within its grace after it ends; orders not attributed to it pay the usual price. The
grace running out is proved in tests/unit/content/test_live_sessions.py with a clock."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import nats
from nats.js.errors import NotFoundError
from siyu.common.v1 import live_pb2

from siyu_kit.events.outbox import decode
from tests.support import wait_until
from tests.support.content import assign, new_guide, new_persona, rfc3339
from tests.support.shop import Shop, ok, refused


def _line_up(*items: tuple[str, int]) -> list[dict]:
    return [{"sku_id": sku, "live_price": {"amount": str(price), "currency": "CNY"}} for sku, price in items]


def _create(shop: Shop, persona_id: str, line_up: list[dict], token: str | None = None, **fields):
    body = {"persona_id": persona_id, "title": "春季新品直播", "scheduled_at": rfc3339(
        datetime.now(timezone.utc) + timedelta(hours=1)), "line_up": line_up,
        "idempotency_key": uuid.uuid4().hex, **fields}
    if token is None:
        return shop.as_staff("POST", "/v1/staff/live-sessions", json=body)
    return shop.call("POST", "/v1/staff/live-sessions", channel=None, token=token, json=body)


def _state(shop: Shop, token: str, session_id: str, state: str):
    return shop.call("POST", f"/v1/staff/live-sessions/{session_id}:change-state", channel=None, token=token,
                     json={"state": f"LIVE_SESSION_STATE_{state}"})


def _order(shop: Shop, token: str, sku: str, **attribution) -> dict:
    return ok(shop.call("POST", "/v1/orders", token=token, json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": "2"}],
        "attribution": attribution}))["order"]


def _charged(order: dict) -> tuple[str, list[tuple[str, str]]]:
    line = order["lines"][0]
    return line["line_amount"]["amount"], [(s["step"], s.get("detail", "")) for s in line.get("steps", [])]


async def _room_events(nats_url: str, session_id: str) -> list[tuple[str, str]]:
    """The room's events on its subject of the SIYU_LIVE stream, in order: (kind, value)."""
    nc = await nats.connect(nats_url)
    try:
        js, found, seq = nc.jetstream(), [], 1
        while True:
            try:
                msg = await js.get_msg("SIYU_LIVE", seq, subject=f"siyu.live.room.{session_id}", next=True)
            except NotFoundError:
                return found
            event = live_pb2.LiveRoomEvent()
            decode(msg.data).payload.Unpack(event)
            kind = event.WhichOneof("kind")
            value = {"state_changed": lambda e: live_pb2.LiveSessionState.Name(e.state_changed.state),
                     "product_pinned": lambda e: e.product_pinned.sku_id,
                     "likes_changed": lambda e: str(e.likes_changed.likes)}.get(kind, lambda e: "")(event)
            found.append((kind, value))
            seq = msg.seq + 1
    finally:
        await nc.close()


def test_a_guides_session_goes_live_and_attributed_orders_pay_live_prices(shop, other_shop, stack):
    persona, elsewhere = new_persona(shop, name="小美"), new_persona(shop, name="王姐")
    guide, guide_id = new_guide(shop)
    assign(shop, persona["persona_id"], guide_id)
    product = shop.new_product(stock=50, price=10000, title="保温杯")
    sku = product["skus"][0]["sku_id"]
    unknown = "sku_" + "0" * 26

    # A guide schedules only for their own personas; the line-up is checked field by field.
    refused(_create(shop, elsewhere["persona_id"], _line_up((sku, 8000)), token=guide), 403,
            "PERSONA_NOT_ASSIGNED")
    refused(_create(shop, persona["persona_id"], _line_up((sku, 10000), (unknown, 1)), token=guide),
            400, fields={"line_up[0].live_price", "line_up[1].sku_id"})
    refused(_create(shop, persona["persona_id"], _line_up((sku, 1), (sku, 2)), token=guide), 400,
            fields={"line_up[1].sku_id"})
    session = ok(_create(shop, persona["persona_id"], _line_up((sku, 8000)), token=guide,
                         price_grace_minutes=60))["live_session"]
    session_id = session["live_session_id"]
    assert session["state"] == "LIVE_SESSION_STATE_SCHEDULED"
    assert session["line_up"][0]["product_id"] == product["product_id"]

    # Pinning needs a LIVE session and a line-up SKU (FAILED_PRECONDITION is 400).
    pin = lambda s: shop.call("POST", f"/v1/staff/live-sessions/{session_id}:pin",  # noqa: E731
                              channel=None, token=guide, json={"sku_id": s})
    refused(pin(sku), 400, "LIVE_SESSION_STATE")
    started = ok(_state(shop, guide, session_id, "LIVE"))
    assert started["changed"] is True and started["live_session"]["state"] == "LIVE_SESSION_STATE_LIVE"
    assert ok(_state(shop, guide, session_id, "LIVE"))["changed"] is False  # asked twice: no change
    refused(pin(unknown), 400, "LIVE_PRODUCT_NOT_IN_LINE_UP")
    assert ok(pin(sku))["live_session"]["pinned_sku_id"] == sku

    # A viewer opens the room: session, persona, the line-up's product with their price,
    # the flash sales bound to the session.
    now = datetime.now(timezone.utc)
    sale = ok(shop.as_staff("POST", "/v1/staff/flash-sales", json={
        "title": "直播秒杀", "sku_id": sku, "price": {"amount": "5000", "currency": "CNY"}, "units": "5",
        "per_member_limit": 1, "starts_at": rfc3339(now + timedelta(hours=1)),
        "ends_at": rfc3339(now + timedelta(hours=2)), "live_session_id": session_id,
        "idempotency_key": uuid.uuid4().hex}))["flash_sale"]
    member = shop.login("live-" + uuid.uuid4().hex[:10])["access_token"]
    room = ok(shop.call("GET", f"/v1/live-sessions/{session_id}", token=member))
    assert room["live_session"]["pinned_sku_id"] == sku and room["live_prices_apply"] is True
    assert [f["flash_sale_id"] for f in room["flash_sales"]] == [sale["flash_sale_id"]]
    assert room["persona"]["persona_id"] == persona["persona_id"]
    assert [p["product_id"] for p in room["products"]] == [product["product_id"]]
    page = ok(shop.call("GET", f"/v1/personas/{persona['persona_id']}", token=member))
    assert page["live_session_ids"] == [session_id]
    shown = ok(shop.call("GET", f"/v1/products/{product['product_id']}/live-sessions"))["sessions"]
    assert [(s["live_session"]["live_session_id"], s["items"][0]["live_price"]["amount"]) for s in shown] == [
        (session_id, "8000")]

    # Likes are counted once per key; the room hears the total from the announcer.
    key = uuid.uuid4().hex
    like = lambda: shop.call("POST", f"/v1/me/live-sessions/{session_id}:like", token=member,  # noqa: E731
                             json={"taps": 3, "idempotency_key": key})
    assert ok(like())["likes"] == "3" and ok(like())["likes"] == "3"

    # Attributed to the session: the live price, shown as its step with the session's id.
    quote = ok(shop.call("POST", "/v1/checkout:quote", token=member, json={
        "lines": [{"sku_id": sku, "quantity": "2"}], "attribution": {"live_session_id": session_id}}))["quote"]
    assert quote["lines"][0]["line_amount"]["amount"] == "16000"
    live_order = _order(shop, member, sku, live_session_id=session_id)
    assert _charged(live_order) == ("16000", [("LIVE_PRICE", session_id)])
    plain = _order(shop, member, sku)
    assert plain["lines"][0]["line_amount"]["amount"] == "20000"
    assert "LIVE_PRICE" not in [s for s, _ in _charged(plain)[1]]

    # Ended, within its grace: still the live price; its state is settled for good.
    ok(_state(shop, guide, session_id, "ENDED"))
    refused(_state(shop, guide, session_id, "LIVE"), 400, "LIVE_SESSION_STATE")
    refused(like(), 400, "LIVE_SESSION_STATE")
    assert _charged(_order(shop, member, sku, live_session_id=session_id))[0] == "16000"
    assert ok(shop.call("GET", f"/v1/live-sessions/{session_id}", token=member))["live_prices_apply"] is True
    assert ok(shop.call("GET", f"/v1/personas/{persona['persona_id']}", token=member))["live_session_ids"] == []
    assert ok(shop.as_staff("GET", "/v1/staff/live-sessions", params={
        "persona_id": persona["persona_id"]}))["live_sessions"][0]["likes"] == "3"

    # The room heard every move, the pin and the like total, through the session's outbox.
    def heard():
        events = asyncio.run(_room_events(stack.nats_url, session_id))
        return events if ("likes_changed", "3") in events and len(events) >= 4 else None

    events = wait_until(heard, timeout=20, interval=0.3, message="room events relayed")
    assert [e for e in events if e[0] != "likes_changed"] == [
        ("state_changed", "LIVE_SESSION_STATE_LIVE"), ("product_pinned", sku),
        ("state_changed", "LIVE_SESSION_STATE_ENDED")]

    # The guide's list holds their persona's session; another merchant finds nothing of it.
    listed = ok(shop.call("GET", "/v1/staff/live-sessions", channel=None, token=guide))["live_sessions"]
    assert [s["live_session_id"] for s in listed] == [session_id]
    refused(other_shop.call("GET", f"/v1/live-sessions/{session_id}"), 404, "LIVE_SESSION_NOT_FOUND")
    refused(other_shop.as_staff("POST", f"/v1/staff/live-sessions/{session_id}:change-state",
                                json={"state": "LIVE_SESSION_STATE_CANCELLED"}), 404)
    stranger = other_shop.login("live-" + uuid.uuid4().hex[:10])["access_token"]
    other_sku = other_shop.new_sku(stock=5, price=10000)
    refused(other_shop.call("POST", "/v1/orders", token=stranger, json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": other_sku, "quantity": "1"}],
        "attribution": {"live_session_id": session_id}}), 404, "ATTRIBUTION_NOT_FOUND")
