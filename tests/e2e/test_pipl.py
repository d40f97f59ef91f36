"""Members' personal-information rights over HTTP: a member asks for their data (PIPL
Art. 45) and downloads one JSON document holding what every service keeps about them —
profile, identities (masked), an address, points, a coupon, a check-in, an order with its
payment — with progress shown while it is gathered, stored sealed. Every new route: bad
input → 400 with field violations, another member's or merchant's export → not found,
staff and anonymous callers → denied."""
from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import nats
from pymongo import MongoClient

from siyu_kit import config

from tests.support import wait_until
from tests.support.content import new_persona
from tests.support.coupons import active_template, claim
from tests.support.member_centre import PHONE, check_in, new_address
from tests.support.shop import Shop, ok, paid_order, refused

EXPORTS = "/v1/me/data-exports"


def member(shop: Shop) -> tuple[str, str]:
    done = shop.login("pipl-" + uuid.uuid4().hex[:10])
    return done["access_token"], done["member"]["member_id"]


def ask(shop: Shop, token: str, key: str = "") -> dict:
    return ok(shop.call("POST", EXPORTS, token=token, json={"idempotency_key": key or uuid.uuid4().hex}))


def ready(shop: Shop, token: str, export_id: str) -> dict:
    return wait_until(lambda: (e := ok(shop.call("GET", f"{EXPORTS}/{export_id}", token=token))["export"])
                      ["state"] == "DATA_EXPORT_STATE_READY" and e, message="export ready")


def buy(shop: Shop, token: str) -> str:
    """A paid order of the seeded shop's baby lotion."""
    return paid_order(shop, token, shop.sku("baby-lotion"))["order_id"]


def flash_buy(shop: Shop, token: str) -> str:
    """One unit of a flash sale (the catalog keeps the member's quota and reservation)."""
    now = datetime.now(timezone.utc)
    sale = ok(shop.as_staff("POST", "/v1/staff/flash-sales", json={
        "title": "export", "sku_id": shop.new_sku(stock=5), "price": {"amount": "100", "currency": "CNY"},
        "units": "2", "per_member_limit": 1, "starts_at": (now + timedelta(seconds=1)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(), "idempotency_key": uuid.uuid4().hex}))["flash_sale"]

    def attempt():
        resp = shop.call("POST", f"/v1/flash-sales/{sale['flash_sale_id']}:buy", token=token,
                         json={"idempotency_key": uuid.uuid4().hex})
        return resp.json()["order"]["order_id"] if resp.status_code == 200 else None
    return wait_until(attempt, timeout=15, interval=0.2, message="the sale started and sold a unit")


def test_an_export_holds_what_every_service_keeps_about_the_member(shop, stack):
    token, member_id = member(shop)
    ok(shop.call("PATCH", "/v1/me/profile", token=token, json={"expected_version": "1", "nickname": "导出测试"}))
    address = ok(shop.call("POST", "/v1/me/addresses", token=token, json=new_address()))["address"]
    template = active_template(shop)
    coupon = ok(claim(shop, token, template["template_id"]))["coupon"]
    ok(check_in(shop, token))
    order_id = buy(shop, token)
    flash_order_id = flash_buy(shop, token)
    persona = new_persona(shop, name="导出人设")
    ok(shop.call("POST", "/v1/me/follows", token=token, json={"persona_id": persona["persona_id"]}))

    first = ask(shop, token, key="export-1")
    assert first["created"] is True
    export = first["export"]
    assert export["state"] == "DATA_EXPORT_STATE_GATHERING" and export["steps_total"] == 4
    again = ask(shop, token, key="export-1")
    assert again["export"]["export_id"] == export["export_id"] and not again.get("created")
    done = ready(shop, token, export["export_id"])
    assert done["steps_done"] == done["steps_total"] == 4 and done["expires_at"] > done["ready_at"]

    body = ok(shop.call("GET", f"{EXPORTS}/{export['export_id']}/document", token=token))
    document = json.loads(body["document"])
    assert document["member_id"] == member_id
    mine = document["member"]
    assert mine["profile"]["nickname"] == "导出测试"
    assert [a["address_id"] for a in mine["addresses"][0]["addresses"]] == [address["address_id"]]
    assert PHONE not in body["document"]  # phones only masked
    assert mine["identities"] and all("****" in (i.get("unionid") or i.get("openid")) for i in mine["identities"])
    assert [c["_id"] for c in mine["coupons"]] == [coupon["coupon_id"]]
    assert len(mine["check_ins"]) == 1 and mine["points"]["entries"]
    assert [o["_id"] for o in document["order"]["orders"]] == sorted([order_id, flash_order_id])
    assert [p["order_id"] for p in document["order"]["payments"]] == [order_id]
    catalog = document["catalog"]
    assert [r["order_id"] for r in catalog["flash_sale_reservations"]] == [flash_order_id]
    assert [q["member_id"] for q in catalog["flash_sale_quotas"]] == [member_id]
    assert [(f["persona_id"], f["persona_name"]) for f in document["content"]["follows"]] == [
        (persona["persona_id"], "导出人设")]
    assert "sealed" not in body["document"] and "outbox" not in body["document"]

    # Stored sealed: the export's document in the member database shows no personal data.
    client = MongoClient(stack.mongodb_uri, tz_aware=True)
    try:
        raw = client[config.load("member").mongodb_db]["data_exports"].find_one({"_id": export["export_id"]})
    finally:
        client.close()
    assert raw["parts"]["member"].startswith("v1.") and "导出测试" not in json.dumps(raw, default=str)


def test_bad_input_other_members_and_merchants_and_wrong_callers_are_refused(shop, other_shop):
    token, _ = member(shop)
    refused(shop.call("POST", EXPORTS, token=token, json={"idempotency_key": "no spaces!"}), 400,
            fields={"idempotency_key"})
    refused(shop.call("POST", EXPORTS, token=token, json={}), 400, fields={"idempotency_key"})
    refused(shop.call("GET", f"{EXPORTS}/not-an-id", token=token), 400, fields={"export_id"})
    refused(shop.call("GET", f"{EXPORTS}/not-an-id/document", token=token), 400, fields={"export_id"})
    export = ask(shop, token)["export"]
    # Not ready yet or ready: the download answers a document only once READY.
    other_token, _ = member(shop)
    refused(shop.call("GET", f"{EXPORTS}/{export['export_id']}", token=other_token), 404, "DATA_EXPORT_NOT_FOUND")
    refused(shop.call("GET", f"{EXPORTS}/{export['export_id']}/document", token=other_token), 404,
            "DATA_EXPORT_NOT_FOUND")
    stranger, _ = member(other_shop)
    refused(other_shop.call("GET", f"{EXPORTS}/{export['export_id']}", token=stranger), 404,
            "DATA_EXPORT_NOT_FOUND")
    # Staff and anonymous callers have no "me".
    assert shop.call("POST", EXPORTS, channel=None, token=shop.staff_token(),
                     json={"idempotency_key": "k1"}).status_code in (401, 403)
    assert shop.call("GET", f"{EXPORTS}/{export['export_id']}").status_code == 401


# ---- erasure -------------------------------------------------------------------------------

DATABASES = ("member", "order", "content", "catalog")


def every_document(stack) -> str:
    """Every document of every service's database, as one text to search."""
    client = MongoClient(stack.mongodb_uri, tz_aware=True)
    try:
        texts = []
        for service in DATABASES:
            db = client[config.load(service).mongodb_db]
            for name in db.list_collection_names():
                texts.extend(json.dumps(d, default=str, ensure_ascii=False) for d in db[name].find())
        return "\n".join(texts)
    finally:
        client.close()


def follows_of(stack, member_id: str) -> list:
    client = MongoClient(stack.mongodb_uri, tz_aware=True)
    try:
        return list(client[config.load("content").mongodb_db]["persona_follows"].find({"member_id": member_id}))
    finally:
        client.close()


def member_doc(stack, member_id: str) -> dict:
    client = MongoClient(stack.mongodb_uri, tz_aware=True)
    try:
        return client[config.load("member").mongodb_db]["members"].find_one({"_id": member_id})
    finally:
        client.close()


def bind_phone(shop: Shop, stack, token: str) -> str:
    phone = "139" + str(uuid.uuid4().int)[:8]
    ok(shop.call("POST", "/v1/me/phone/sms-code", token=token, json={"phone": phone}))
    sms = httpx.get(stack.wechat_url + "/_standin/sms", params={"phone": phone}, timeout=10).json()["messages"]
    code = "".join(ch for ch in sms[-1] if ch.isdigit())[:6]
    ok(shop.call("POST", "/v1/me/phone/sms", token=token, json={"phone": phone, "code": code}))
    return phone


def erase(shop: Shop, token: str, **body) -> httpx.Response:
    return shop.call("POST", "/v1/me:erase", token=token,
                     json={"idempotency_key": uuid.uuid4().hex, "confirmation": "ERASE", **body})


def new_member_gifts(shop: Shop, token: str) -> list[dict]:
    coupons = ok(shop.call("GET", "/v1/me/coupons", token=token)).get("coupons", [])
    return [c for c in coupons if c["source"] == "COUPON_SOURCE_NEW_MEMBER"]


async def gifts_drained(stack) -> bool:
    """The new-member gift consumer has taken and acknowledged every registration published."""
    nc = await nats.connect(stack.nats_url)
    try:
        info = await nc.jetstream().consumer_info("SIYU_MEMBER", "member-coupon-new-member")
        return info.num_pending == 0 and info.num_ack_pending == 0
    finally:
        await nc.close()


def test_erasure_removes_personal_data_everywhere_and_keeps_orders_and_ledgers(shop, stack):
    # The shop gives every new member a coupon (the farm guard keeps it to one per person).
    gift = active_template(shop, staff_only=True, total="0")["template_id"]
    ok(shop.as_staff("PUT", "/v1/staff/coupon-settings", json={"settings": {"return_on_refund": True,
                                                                            "new_member_template_id": gift}}))
    unionid = "pipl-erase-" + uuid.uuid4().hex[:10]
    login = shop.login(unionid)
    token, member_id = login["access_token"], login["member"]["member_id"]
    wait_until(lambda: new_member_gifts(shop, token), message="the new-member gift")
    tag = uuid.uuid4().hex[:8]
    nickname, recipient, street = f"抹除{tag}", f"收件人{tag}", f"文三路 {tag} 号"
    ok(shop.call("PATCH", "/v1/me/profile", token=token, json={"expected_version": "1", "nickname": nickname}))
    phone = bind_phone(shop, stack, token)
    ok(shop.call("POST", "/v1/me/addresses", token=token,
                 json=new_address(recipient=recipient, phone=phone, detail=street, is_default=True)))
    ok(check_in(shop, token))
    persona = new_persona(shop)
    assert ok(shop.call("POST", "/v1/me/follows", token=token,
                        json={"persona_id": persona["persona_id"]}))["follower_count"] == "1"
    paid_id = buy(shop, token)
    sku = shop.new_sku(stock=3)
    unpaid = ok(shop.call("POST", "/v1/orders", token=token, json={
        "lines": [{"sku_id": sku, "quantity": 1}], "idempotency_key": uuid.uuid4().hex}))["order"]
    assert unpaid["shipping_address"]["recipient"] == recipient
    wait_until(lambda: nickname in every_document(stack), message="the profile stored")

    refused(erase(shop, token, confirmation="yes"), 400, fields={"confirmation"})
    done = ok(erase(shop, token))
    assert done["member_id"] == member_id and done["state"] in ("ERASURE_STATE_ERASING", "ERASURE_STATE_ERASED")
    # Sessions end at once (the gateway's version cache holds for up to SIYU_TOKEN_VERSION_TTL_S).
    wait_until(lambda: shop.call("GET", "/v1/me", token=token).status_code == 401, message="the session ended")
    assert shop.call("POST", "/v1/auth/refresh", json={"refresh_token": login["refresh_token"]}).status_code == 401
    wait_until(lambda: member_doc(stack, member_id).get("erasure_state") == "ERASED", message="every service erased")
    acks = member_doc(stack, member_id)["erasure_acks"]
    assert set(acks) == set(DATABASES)
    # The content service deleted the follow and took it off the persona's count.
    page = ok(shop.call("GET", f"/v1/personas/{persona['persona_id']}"))
    assert page["persona"].get("follower_count", "0") == "0"
    assert follows_of(stack, member_id) == []

    # No service keeps the nickname, the phone (clear or masked), the recipient or the street.
    everything = every_document(stack)
    masked = f"{phone[:3]}****{phone[-4:]}"
    for personal in (nickname, phone, masked, recipient, street, unionid):
        assert personal not in everything, personal
    # The unpaid order was cancelled (its stock back); the paid one is kept and balances.
    staff_unpaid = ok(shop.as_staff("GET", f"/v1/staff/orders/{unpaid['order_id']}"))["order"]
    assert staff_unpaid["state"] == "ORDER_STATE_CANCELLED"
    wait_until(lambda: shop.stock(sku)["available"] == 3, message="stock released")
    paid = ok(shop.as_staff("GET", f"/v1/staff/orders/{paid_id}"))["order"]
    assert paid["member_id"] == member_id and paid["state"] != "ORDER_STATE_CANCELLED"
    assert ok(shop.as_staff("GET", f"/v1/staff/orders/{paid_id}/ledger"))["balanced"] is True
    assert ok(shop.as_staff("GET", f"/v1/staff/members/{member_id}/points"))["audit"]["consistent"] is True

    # Logging in again is a new member, with nothing of the old one.
    again = shop.login(unionid)
    assert again["created"] is True and again["member"]["member_id"] != member_id
    assert not again["member"].get("nickname")
    # ... who gets no second new-member gift; a new person registered after them does.
    newcomer = shop.login("pipl-new-" + uuid.uuid4().hex[:10])["access_token"]
    wait_until(lambda: new_member_gifts(shop, newcomer), message="the newcomer's gift")
    wait_until(lambda: asyncio.run(gifts_drained(stack)), message="every registration handled")
    assert new_member_gifts(shop, again["access_token"]) == []
    # The erased person's unionid and phone stay in the referral farm guard, as keyed hashes.
    client = MongoClient(stack.mongodb_uri, tz_aware=True)
    try:
        guard = list(client[config.load("member").mongodb_db]["referral_guard"].find({"member_id": member_id}))
    finally:
        client.close()
    assert len(guard) == 2

    # Asked again (the old token is over): refused, nothing changes.
    before = member_doc(stack, member_id)
    assert erase(shop, token).status_code == 401
    assert member_doc(stack, member_id) == before


def test_erasure_bad_input_and_wrong_callers_are_refused(shop):
    token, member_id = member(shop)
    refused(shop.call("POST", "/v1/me:erase", token=token, json={}), 400,
            fields={"idempotency_key", "confirmation"})
    refused(erase(shop, token, confirmation="erase"), 400, fields={"confirmation"})
    assert ok(shop.call("GET", "/v1/me", token=token))["member"]["member_id"] == member_id  # nothing written
    assert shop.call("POST", "/v1/me:erase", channel=None, token=shop.staff_token(),
                     json={"idempotency_key": "k1", "confirmation": "ERASE"}).status_code in (401, 403)
    assert shop.call("POST", "/v1/me:erase", json={"idempotency_key": "k1", "confirmation": "ERASE"}).status_code == 401


def test_an_erasure_key_is_refused_to_another_member(shop):
    token, member_id = member(shop)
    other_token, other_id = member(shop)
    key = uuid.uuid4().hex
    body = {"idempotency_key": key, "confirmation": "ERASE"}
    assert ok(shop.call("POST", "/v1/me:erase", token=token, json=body))["member_id"] == member_id
    refused(shop.call("POST", "/v1/me:erase", token=other_token, json=body), 409, reason="IDEMPOTENCY_KEY_REUSED")
    # Nothing was written for the other member: still signed in, not erasing.
    assert ok(shop.call("GET", "/v1/me", token=other_token))["member"]["member_id"] == other_id
