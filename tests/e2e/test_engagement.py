"""Engagement through the gateway, as front ends use it: a held comment only its author
sees until staff approve it, a double like counted once, a share code opened and then
carried by an order into the content's funnel, and the bounded batch of product events."""
from __future__ import annotations

import uuid

import pytest

from tests.support import wait_until
from tests.support.shop import Shop, make_shop, ok, refused

LOTION = "baby-lotion"


@pytest.fixture(scope="module")
def shop(stack) -> Shop:
    # One shop for the module: each test acts through members of its own.
    return make_shop(stack)


def _member(shop: Shop, name: str) -> str:
    return shop.login(f"union-{name}-{uuid.uuid4().hex[:6]}")["access_token"]


def _content(shop: Shop, token: str | None = None) -> dict:
    return ok(shop.call("GET", f"/v1/contents/{shop.data['content_id']}", token=token))["content"]


def test_a_comment_with_a_blocked_word_is_held_for_its_author_until_approved(shop):
    content = shop.data["content_id"]
    ok(shop.as_staff("PUT", "/v1/staff/engagement-settings", json={
        "settings": {"sensitive_words": ["微信"], "report_hide_threshold": 3, "attribution_window_days": 7},
        "expected_version": "0"}))
    author, reader = _member(shop, "author"), _member(shop, "reader")
    held = ok(shop.call("POST", f"/v1/contents/{content}/comments", token=author, json={
        "text": "想要的加我微信", "idempotency_key": "c-1"}))["comment"]
    assert held["status"] == "COMMENT_STATUS_HELD"
    shown = lambda token: [c["comment_id"] for c in ok(shop.call(  # noqa: E731
        "GET", f"/v1/contents/{content}/comments", token=token)).get("comments", [])]
    assert shown(author) == [held["comment_id"]]
    assert shown(reader) == [] and shown(None) == []

    review = ok(shop.as_staff("GET", "/v1/staff/comments"))["comments"]
    assert [(c["comment_id"], c["matched_words"]) for c in review] == [(held["comment_id"], ["微信"])]
    approved = ok(shop.as_staff("POST", f"/v1/staff/comments/{held['comment_id']}:moderate", json={
        "action": "MODERATION_ACTION_APPROVE", "reason": "a shop account, fine"}))
    assert approved["comment"]["status"] == "COMMENT_STATUS_PUBLISHED" and approved["changed"]
    assert shown(reader) == [held["comment_id"]]
    assert _content(shop)["comment_count"] == "1"


def test_a_double_like_and_a_repeat_view_count_once(shop):
    content, token = shop.data["content_id"], _member(shop, "liker")
    for _ in range(2):
        liked = ok(shop.call("POST", f"/v1/contents/{content}:like", token=token, json={"liked": True}))
        viewed = ok(shop.call("POST", f"/v1/contents/{content}:view", token=token, json={}))
    # The repeats changed nothing.
    assert (liked["like_count"], liked["changed"], viewed["view_count"], viewed["counted"]) == ("1", False, "1", False)
    shown = _content(shop)
    assert (shown["like_count"], shown["view_count"]) == ("1", "1")
    ok(shop.call("POST", f"/v1/contents/{content}:like", token=token, json={"liked": False}))
    assert _content(shop).get("like_count", "0") == "0"


def test_a_share_code_opened_then_carried_by_an_order_into_the_content_funnel(shop):
    content, persona = shop.data["content_id"], shop.data["persona_id"]
    sharer, buyer = _member(shop, "sharer"), _member(shop, "buyer")
    share = ok(shop.call("POST", "/v1/share-codes", token=sharer, json={
        "target_kind": "SHARE_TARGET_KIND_CONTENT", "target_id": content}))["share_code"]
    code = share["code"]
    assert len(code) <= 32 and share["persona_id"] == persona
    opened = ok(shop.call("POST", f"/v1/share-codes/{code}:open", token=buyer, json={}))
    assert opened["counted"] and opened["share_code"]["content_id"] == content
    assert ok(shop.call("POST", f"/v1/share-codes/{code}:open", token=buyer, json={}))["counted"] is False

    # The order names only the code; it carries the content and persona the code does.
    order = ok(shop.call("POST", "/v1/orders", token=buyer, json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": shop.sku(LOTION), "quantity": "1"}],
        "attribution": {"share_code": code}}))["order"]
    carried = {k: v for k, v in order["attribution"].items() if v}
    assert carried == {"channel": "CHANNEL_H5", "share_code": code, "persona_id": persona, "content_id": content}
    wait_until(lambda: ok(shop.as_staff("GET", f"/v1/staff/contents/{content}/funnel"))["funnel"].get("orders") == "1",
               message="the content funnel counts the order")


def test_product_events_in_bounded_batches_feed_the_funnel_once(shop):
    content, persona, token = shop.data["content_id"], shop.data["persona_id"], _member(shop, "clicker")
    product = shop.product(LOTION)
    event = lambda i: {"client_event_id": f"click-{i:04d}", "kind": "PRODUCT_EVENT_KIND_CLICK",  # noqa: E731
                       "product_id": product, "content_id": content, "persona_id": persona}
    refused(shop.call("POST", "/v1/product-events:batch", token=token,
                      json={"events": [event(i) for i in range(51)]}), 400, fields={"events"})
    refused(shop.call("POST", "/v1/product-events:batch", token=token, json={"events": [
        {**event(1), "product_id": "nope", "kind": "PRODUCT_EVENT_KIND_UNSPECIFIED"}]}), 400,
        fields={"events[0].product_id", "events[0].kind"})
    batch = {"events": [event(i) for i in range(3)]}
    first = ok(shop.call("POST", "/v1/product-events:batch", token=token, json=batch))
    again = ok(shop.call("POST", "/v1/product-events:batch", token=token, json=batch))
    assert (first.get("accepted"), first.get("duplicates", 0), again.get("accepted", 0), again.get("duplicates")) \
        == (3, 0, 0, 3)
    funnel = ok(shop.as_staff("GET", f"/v1/staff/contents/{content}/funnel"))["funnel"]
    assert funnel["product_clicks"] == "3"
