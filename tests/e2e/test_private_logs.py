"""Personal data never reaches a log: a member logs in, binds a phone, adds an address,
orders to it and pays, refreshes and presents a bad token; then every process's log of the
suite is searched for the phone's digits, the bearer tokens, the address line and any
signed token (member, staff, refresh or a service-trust assertion)."""
from __future__ import annotations

import re
import uuid

import httpx

from tests.support.shop import Shop, ok

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.")


def test_a_journey_with_a_phone_tokens_and_an_address_leaves_none_in_the_logs(shop: Shop, stack):
    login = shop.login("private-" + uuid.uuid4().hex[:10])
    token, refresh = login["access_token"], login["refresh_token"]

    phone = "139" + str(uuid.uuid4().int)[:8]
    ok(shop.call("POST", "/v1/me/phone/sms-code", token=token, json={"phone": phone}))
    sms = httpx.get(stack.wechat_url + "/_standin/sms", params={"phone": phone}, timeout=10).json()["messages"]
    code = "".join(ch for ch in sms[-1] if ch.isdigit())[:6]
    ok(shop.call("POST", "/v1/me/phone/sms", token=token, json={"phone": phone, "code": code}))
    # A second code too soon and a wrong code: refusals log too.
    shop.call("POST", "/v1/me/phone/sms-code", token=token, json={"phone": phone})

    line = f"隐私巷 {uuid.uuid4().int % 10_000} 号 {uuid.uuid4().hex[:6]} 室"
    receiver_phone = "137" + str(uuid.uuid4().int)[:8]
    address = ok(shop.call("POST", "/v1/me/addresses", token=token, json={
        "idempotency_key": uuid.uuid4().hex, "recipient": "王五", "phone": receiver_phone, "province_code": "330000",
        "city_code": "330100", "district_code": "330106", "detail": line}))["address"]
    sku = shop.new_sku(stock=5)
    order = ok(shop.call("POST", "/v1/orders", token=token, json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": "1"}],
        "address_id": address["address_id"]}))["order"]
    shop.pay(token, order["order_id"])
    ok(shop.call("GET", f"/v1/orders/{order['order_id']}", token=token))

    renewed = ok(shop.call("POST", "/v1/auth/refresh", json={"refresh_token": refresh}))
    assert shop.call("GET", "/v1/me", token=token[:-4] + "AAAA").status_code == 401
    staff = shop.staff_token()
    ok(shop.call("GET", "/v1/staff/members", channel=None, token=staff, params={"phone_suffix": phone[-4:]}))

    secrets = {"phone": phone, "receiver phone": receiver_phone, "address line": line, "access token": token,
               "refresh token": refresh, "renewed token": renewed["access_token"], "staff token": staff}
    logs = sorted((stack.data_dir / "log").glob("*.log"))
    assert {p.stem for p in logs} >= {"gateway", "member", "order", "catalog", "content"}
    found = []
    for path in logs:
        text = path.read_text(errors="replace")
        found += [f"{path.name}: {what}" for what, value in secrets.items() if value in text]
        found += [f"{path.name}: a signed token {m.group(0)[:16]}…" for m in JWT.finditer(text)]
    assert not found, found
