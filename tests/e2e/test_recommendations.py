"""Recommendations and the product-detail screen through the gateway, as front ends call
them: bought-with from other members' paid orders, followed personas' picks, best sellers
for a new member and for a member who switched personalisation off; the product detail
with every part, and with the content service away."""
from __future__ import annotations

import sys
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from siyu_kit.devstack import free_port, wait_for_port
from tests.support import wait_until
from tests.support.content import limited_time_product, new_content, new_persona, rfc3339
from tests.support.shop import Shop, ok, refused


def member(shop: Shop) -> str:
    return shop.login("recs-" + uuid.uuid4().hex[:10])["access_token"]


def buy(shop: Shop, token: str, *skus: str) -> dict:
    order = ok(shop.call("POST", "/v1/orders", token=token, json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": s, "quantity": "1"} for s in skus]}))["order"]
    shop.pay(token, order["order_id"])
    return order


def recommendations(shop: Shop, token: str, size: int = 50) -> dict:
    return ok(shop.call("GET", "/v1/me/recommendations", token=token, params={"page_size": size}))


def rows(page: dict) -> list[tuple[str, str, str]]:
    """(product id, reason, reason text) in order."""
    return [(r["product"]["product_id"], r["reason"].removeprefix("RECOMMENDATION_REASON_"), r["reason_text"])
            for r in page.get("recommendations", [])]


# What the module's tests share of their (module-wide) shop, made on first use.
_MADE: dict[tuple[str, str], dict] = {}


def _once(shop: Shop, what: str, make):
    key = (shop.data["merchant_code"], what)
    if key not in _MADE:
        _MADE[key] = make()
    return _MADE[key]


@pytest.fixture
def products(shop) -> dict[str, dict]:
    return _once(shop, "products", lambda: {
        name: shop.new_product(stock=50, price=price, title=title)
        for name, price, title in (("A", 3000, "保温杯"), ("B", 2000, "杯刷"), ("C", 9000, "香薰"))})


def test_bought_with_popular_for_newcomers_and_popular_only_when_switched_off(shop, products):
    a, b = products["A"], products["B"]
    sku = {k: p["skus"][0]["sku_id"] for k, p in products.items()}
    buy(shop, member(shop), sku["A"], sku["B"])  # A and B in one order
    buyer = member(shop)
    buy(shop, buyer, sku["A"])

    # The buyer of A is offered B, bought with A; never A itself, which they just bought.
    def offered_b():
        page = recommendations(shop, buyer)
        return page if (b["product_id"], "BOUGHT_WITH", "和 保温杯 一起买") in rows(page) else None

    page = wait_until(offered_b, timeout=20, interval=0.2, message="B offered as bought with A")
    assert page["personalised"] is True
    found = rows(page)
    assert found[0][0] == b["product_id"]
    assert a["product_id"] not in [p for p, reason, _ in found if reason != "POPULAR"]
    assert page["recommendations"][0]["related_product_id"] == a["product_id"]
    assert page["recommendations"][0]["product"]["skus"][0]["list_price"]["amount"] == "2000"
    assert len({p for p, _, _ in found}) == len(found)

    # A new member gets best sellers: A (two units) before B (one).
    fresh = rows(recommendations(shop, member(shop)))
    assert {reason for _, reason, _ in fresh} == {"POPULAR"} and {t for _, _, t in fresh} == {"热销"}
    ids = [p for p, _, _ in fresh]
    assert ids.index(a["product_id"]) < ids.index(b["product_id"])

    # Switched off: popular only, nothing from the member's history.
    version = ok(shop.call("GET", "/v1/me/profile", token=buyer))["profile"]["version"]
    ok(shop.call("PATCH", "/v1/me/profile", token=buyer, json={"expected_version": version,
                                                               "personalised_recommendations": False}))
    off = wait_until(lambda: (lambda p: p if p["personalised"] is False else None)(recommendations(shop, buyer)),
                     timeout=20, interval=0.2, message="the switch reached the content service")
    assert {reason for _, reason, _ in rows(off)} == {"POPULAR"}


def test_followed_personas_featured_products_come_with_the_persona_name(shop, products):
    c = products["C"]
    persona = new_persona(shop, name="小美", featured_product_ids=[c["product_id"]])
    token = member(shop)
    ok(shop.call("POST", "/v1/me/follows", token=token, json={"persona_id": persona["persona_id"]}))
    page = recommendations(shop, token)
    picked = [r for r in page["recommendations"] if r["product"]["product_id"] == c["product_id"]]
    assert len(picked) == 1 and picked[0]["reason"] == "RECOMMENDATION_REASON_FOLLOWED_PERSONA"
    assert (picked[0]["reason_text"], picked[0]["persona_id"]) == ("来自 小美", persona["persona_id"])


def detail(shop: Shop, product_id: str, token: str | None = None, url: str = "") -> httpx.Response:
    headers = {"X-Api-Key": shop.key("H5"), **({"Authorization": f"Bearer {token}"} if token else {})}
    return httpx.get(f"{url or shop.url}/v1/products/{product_id}/detail", headers=headers, timeout=30)


@pytest.fixture
def featured(shop, products) -> dict:
    """Product A with a flash sale and a published article featuring it."""
    return _once(shop, "featured", lambda: _feature(shop, products["A"]))


def _feature(shop: Shop, a: dict) -> dict:
    now = datetime.now(timezone.utc)
    sale = ok(shop.as_staff("POST", "/v1/staff/flash-sales", json={
        "title": "明日秒杀", "sku_id": a["skus"][0]["sku_id"], "price": {"amount": "1000", "currency": "CNY"},
        "units": "5", "per_member_limit": 1, "starts_at": rfc3339(now + timedelta(hours=1)),
        "ends_at": rfc3339(now + timedelta(hours=2)), "idempotency_key": uuid.uuid4().hex}))["flash_sale"]
    persona = new_persona(shop, name="王姐")
    article = new_content(shop, persona["persona_id"], product_ids=[a["product_id"]], title="保温杯测评")
    return {"sale": sale, "persona": persona, "article": article}


def test_product_detail_in_one_call_with_every_part(shop, products, featured):
    a = products["A"]
    body = ok(detail(shop, a["product_id"], token=member(shop)))
    assert body["product"]["product_id"] == a["product_id"] and body["product"]["skus"]
    assert [s["flash_sale_id"] for s in body["flash_sales"]] == [featured["sale"]["flash_sale_id"]]
    assert [c["content_id"] for c in body["contents"]] == [featured["article"]["content_id"]]
    assert [p["persona_id"] for p in body["personas"]] == [featured["persona"]["persona_id"]]
    # Live sessions are the live-session service's part: when it answers, no session has A.
    assert "content" not in body["unavailable"] and "flash_sales" not in body["unavailable"]
    if "live" not in body["unavailable"]:
        assert (body["live_status"], body["live_sessions"]) == ("NONE", [])
    # With a member token each SKU carries what this member pays (a limited-time price here).
    cheaper = limited_time_product(shop, list_fen=9000, price_fen=7000)
    mine = ok(detail(shop, cheaper["product_id"], token=member(shop)))["product"]["skus"][0]
    assert mine["member_price"]["amount"] == "7000"
    assert "member_price" not in ok(detail(shop, cheaper["product_id"]))["product"]["skus"][0]
    # The same content as its own paged route gives it.
    listed = ok(shop.call("GET", f"/v1/products/{a['product_id']}/contents"))
    assert [c["content_id"] for c in listed["contents"]] == [featured["article"]["content_id"]]


@pytest.fixture
def gateway_without_content(stack):
    """A second gateway whose content service address has nothing listening."""
    port = free_port()
    env = {**stack.env(), "SIYU_GATEWAY_PORT": str(port), "SIYU_CONTENT_ADDR": f"127.0.0.1:{free_port()}"}
    proc = stack._spawn("gateway-no-content", [sys.executable, "-m", "gateway"], env)
    wait_for_port(port, 60, "the second gateway", proc)
    yield f"http://127.0.0.1:{port}"
    stack.stop("gateway-no-content")


def test_product_detail_answers_without_the_content_service(shop, products, featured, gateway_without_content):
    a = products["A"]
    body = ok(detail(shop, a["product_id"], url=gateway_without_content))
    assert body["product"]["product_id"] == a["product_id"]
    assert {"content", "live"} <= set(body["unavailable"]) and "contents" not in body
    assert [s["flash_sale_id"] for s in body["flash_sales"]] == [featured["sale"]["flash_sale_id"]]


def test_product_detail_refuses_bad_input_and_other_merchants_products(shop, other_shop, products):
    refused(detail(shop, "not-an-id"), 400, "INVALID_FIELDS", fields={"product_id"})
    refused(detail(other_shop, products["A"]["product_id"]), 404)
    resp = httpx.get(f"{shop.url}/v1/products/{products['A']['product_id']}/detail", timeout=30)
    refused(resp, 401, "API_KEY_MISSING")
