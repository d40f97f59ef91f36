"""Members' personal-information rights over HTTP: a member asks for their data (PIPL
Art. 45) and downloads one JSON document holding what every service keeps about them —
profile, identities (masked), an address, points, a coupon, a check-in, an order with its
payment — with progress shown while it is gathered, stored sealed. Every new route: bad
input → 400 with field violations, another member's or merchant's export → not found,
staff and anonymous callers → denied."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

from pymongo import MongoClient

from siyu_kit import config

from tests.e2e.test_addresses import PHONE, new_address
from tests.e2e.test_checkin import check_in
from tests.e2e.test_coupons import active_template, claim
from tests.e2e.test_points import buy
from tests.support import wait_until
from tests.support.shop import Shop, ok, refused

EXPORTS = "/v1/me/data-exports"


def member(shop: Shop) -> tuple[str, str]:
    done = shop.login("pipl-" + uuid.uuid4().hex[:10])
    return done["access_token"], done["member"]["member_id"]


def ask(shop: Shop, token: str, key: str = "") -> dict:
    return ok(shop.call("POST", EXPORTS, token=token, json={"idempotency_key": key or uuid.uuid4().hex}))


def ready(shop: Shop, token: str, export_id: str) -> dict:
    return wait_until(lambda: (e := ok(shop.call("GET", f"{EXPORTS}/{export_id}", token=token))["export"])
                      ["state"] == "DATA_EXPORT_STATE_READY" and e, message="export ready")


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

    first = ask(shop, token, key="export-1")
    assert first["created"] is True
    export = first["export"]
    assert export["state"] == "DATA_EXPORT_STATE_GATHERING" and export["steps_total"] == 3
    again = ask(shop, token, key="export-1")
    assert again["export"]["export_id"] == export["export_id"] and not again.get("created")
    done = ready(shop, token, export["export_id"])
    assert done["steps_done"] == done["steps_total"] == 3 and done["expires_at"] > done["ready_at"]

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
