"""A live room over HTTP, as a viewer's EventSource sees it: the snapshot, then the staff's
pin, a flash sale bound to the session and an attributed purchase arrive in order; the
connection drops, something happens meanwhile, and a reconnect with Last-Event-ID misses
nothing the stream kept; another merchant's or an unknown session is 404; a member on two
connections is one unique viewer."""
from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import nats
from nats.js.errors import NotFoundError

from siyu_kit.events.streams import LIVE_STREAM_TOPIC, stream_name
from tests.support import eventually
from tests.support.content import new_persona, rfc3339
from tests.support.shop import Shop, ok, refused

IGNORED = {"viewers_changed", "likes_changed"}  # arrive on their own schedule


class Viewer:
    """One open event stream; `next()` is the next event as (kind, id, data)."""

    def __init__(self, shop: Shop, session_id: str, token: str, last_event_id: str = ""):
        query = {"api_key": shop.key(), "access_token": token}  # as an EventSource sends them
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self.client = httpx.AsyncClient(base_url=shop.url, timeout=httpx.Timeout(15, read=15))
        self.request = self.client.build_request("GET", f"/v1/live-sessions/{session_id}/events", params=query,
                                                 headers=headers)
        self.response: httpx.Response | None = None
        self.lines = None

    async def __aenter__(self) -> "Viewer":
        self.response = await self.client.send(self.request, stream=True)
        assert self.response.status_code == 200, await self.response.aread()
        assert self.response.headers["content-type"].startswith("text/event-stream")
        self.lines = self.response.aiter_lines()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.response.aclose()
        await self.client.aclose()

    async def next(self) -> tuple[str, str, dict]:
        kind, event_id, data = "", "", ""
        while True:
            line = await asyncio.wait_for(anext(self.lines), 15)
            if line.startswith(":"):
                continue  # heartbeat
            if not line:
                if kind:
                    return kind, event_id, json.loads(data)
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            kind, event_id, data = (value if name == "event" else kind, value if name == "id" else event_id,
                                    value if name == "data" else data)

    async def next_kind(self) -> tuple[str, str, dict]:
        while (event := await self.next())[0] in IGNORED:
            pass
        return event


async def stream_ids(stack, session_id: str) -> list[int]:
    nc = await nats.connect(stack.nats_url)
    try:
        js, ids, seq = nc.jetstream(), [], 1
        while True:
            try:
                msg = await js.get_msg(stream_name(LIVE_STREAM_TOPIC), seq, subject=f"siyu.live.room.{session_id}",
                                       next=True)
            except NotFoundError:
                return ids
            ids.append(msg.seq)
            seq = msg.seq + 1
    finally:
        await nc.close()


def live_session(shop: Shop, sku: str) -> str:
    persona = new_persona(shop, name="小美")
    session = ok(shop.as_staff("POST", "/v1/staff/live-sessions", json={
        "persona_id": persona["persona_id"], "title": "春季新品直播",
        "scheduled_at": rfc3339(datetime.now(timezone.utc) + timedelta(minutes=5)),
        "line_up": [{"sku_id": sku, "live_price": {"amount": "7900", "currency": "CNY"}}],
        "idempotency_key": uuid.uuid4().hex}))["live_session"]
    ok(shop.as_staff("POST", f"/v1/staff/live-sessions/{session['live_session_id']}:change-state",
                     json={"state": "LIVE_SESSION_STATE_LIVE"}))
    return session["live_session_id"]


async def test_a_viewer_sees_the_room_in_order_and_resumes_without_missing_anything(shop, stack):
    product = shop.new_product(stock=50, price=10000, title="保温杯")
    sku = product["skus"][0]["sku_id"]
    session_id = live_session(shop, sku)
    member = shop.login("viewer-" + uuid.uuid4().hex[:8])["access_token"]
    seen: list[int] = []
    async with Viewer(shop, session_id, member) as viewer:
        kind, snapshot_id, snapshot = await viewer.next()
        assert kind == "snapshot" and snapshot["live_session"]["state"] == "LIVE_SESSION_STATE_LIVE"
        assert snapshot_id  # the state change before: a reconnect resumes after it

        ok(shop.as_staff("POST", f"/v1/staff/live-sessions/{session_id}:pin", json={"sku_id": sku}))
        kind, pin_id, pinned = await viewer.next_kind()
        assert kind == "product_pinned" and pinned["product_pinned"]["sku_id"] == sku
        now = datetime.now(timezone.utc)
        sale = ok(shop.as_staff("POST", "/v1/staff/flash-sales", json={
            "title": "直播秒杀", "sku_id": sku, "price": {"amount": "990", "currency": "CNY"}, "units": "5",
            "live_session_id": session_id, "starts_at": rfc3339(now - timedelta(seconds=1)),
            "ends_at": rfc3339(now + timedelta(hours=1)), "idempotency_key": uuid.uuid4().hex}))["flash_sale"]
        kind, flash_id, started = await viewer.next_kind()
        assert kind == "flash_sale_started"
        assert (started["flash_sale_started"]["flash_sale_id"], started["flash_sale_started"]["total_units"]) == (
            sale["flash_sale_id"], "5")
        buyer = shop.login("buyer-" + uuid.uuid4().hex[:8])["access_token"]
        order = ok(shop.call("POST", "/v1/orders", token=buyer, json={
            "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": "2"}],
            "attribution": {"live_session_id": session_id}}))["order"]
        shop.pay(buyer, order["order_id"])
        kind, bought_id, bought = await viewer.next_kind()
        assert kind == "someone_bought"
        assert (bought["someone_bought"]["product_title"], bought["someone_bought"]["quantity"]) == ("保温杯", "2")
        seen = [int(i) for i in (pin_id, flash_id, bought_id)]
        assert seen == sorted(seen)

    # Gone; meanwhile the staff unpins. Back with the last id: everything after it, once.
    ok(shop.as_staff("POST", f"/v1/staff/live-sessions/{session_id}:pin", json={"sku_id": ""}))
    async with Viewer(shop, session_id, member, last_event_id=str(seen[-1])) as again:
        kind, _, _ = await again.next()
        assert kind == "snapshot"
        after = [i for i in await stream_ids(stack, session_id) if i > seen[-1]]
        resumed = [await again.next() for _ in after]
        assert [int(i) for _, i, _ in resumed] == after  # every retained event after the id, in order, once
        assert ("product_pinned", "") in [(k, d.get("product_pinned", {}).get("sku_id", "?")) for k, _, d in resumed]


def test_an_unknown_or_another_merchants_session_is_not_found(shop, other_shop):
    sku = other_shop.new_sku(stock=5)
    elsewhere = live_session(other_shop, sku)
    member = shop.login("nosy-" + uuid.uuid4().hex[:8])["access_token"]
    for session_id in (elsewhere, "liv_" + "0" * 26):
        resp = shop.call("GET", f"/v1/live-sessions/{session_id}/events", token=member)
        refused(resp, 404, "LIVE_SESSION_NOT_FOUND")
    refused(shop.call("GET", f"/v1/live-sessions/{elsewhere}/events"), 401, "TOKEN_MISSING")


async def test_two_connections_of_one_member_are_one_unique_viewer(shop):
    session_id = live_session(shop, shop.new_sku(stock=5))
    member = shop.login("twice-" + uuid.uuid4().hex[:8])["access_token"]

    def figures() -> dict:
        return ok(shop.call("GET", f"/v1/live-sessions/{session_id}", token=member))["live_session"]

    async with Viewer(shop, session_id, member) as first, Viewer(shop, session_id, member) as second:
        assert (await first.next())[0] == (await second.next())[0] == "snapshot"
        room = await eventually(lambda: (f := figures())["concurrent_viewers"] == "2" and f,
                                message="both connections counted")
        assert room["unique_viewers"] == "1" and room["peak_concurrent_viewers"] == "2"
