"""A member manages the address book through the gateway as a mini-program would: add,
edit, set the default, delete; bad input is a 400 naming each field and writes nothing;
another member or another merchant can neither read nor change the book; the phone is
shown masked in every answer."""
from __future__ import annotations

import uuid

from tests.support.member_centre import PHONE, new_address
from tests.support.shop import Shop

def violations(resp) -> dict[str, str]:
    return {v["field"]: v["description"] for v in resp.json()["error"].get("field_violations", [])}


def book(shop: Shop, token: str, channel: str = "H5") -> list[dict]:
    resp = shop.call("GET", "/v1/me/addresses", token=token, channel=channel)
    assert resp.status_code == 200, resp.text
    assert PHONE not in resp.text
    return resp.json().get("addresses", [])


def test_a_member_manages_the_address_book(shop):
    token = shop.login("addr-" + uuid.uuid4().hex[:8])["access_token"]
    assert book(shop, token) == []
    body = new_address()
    first = shop.call("POST", "/v1/me/addresses", token=token, json=body)
    assert first.status_code == 200, first.text
    assert PHONE not in first.text
    a = first.json()["address"]
    assert (a["phone_masked"], a["province_name"], a["city_name"], a["district_name"], a["is_default"]) == (
        "138****8000", "浙江省", "杭州市", "西湖区", True)
    repeat = shop.call("POST", "/v1/me/addresses", token=token, json=body)
    assert repeat.status_code == 200 and repeat.json()["address"]["address_id"] == a["address_id"]
    assert not repeat.json().get("created", False)

    b = shop.call("POST", "/v1/me/addresses", token=token,
                  json=new_address(recipient="李四", phone="13900001111", province_code="440000",
                                   city_code="441900", district_code="441900", detail="东城街道 1 号")).json()["address"]
    assert (b["city_name"], b["district_name"], b.get("is_default", False)) == ("东莞市", "东莞市", False)

    edited = shop.call("PATCH", f"/v1/me/addresses/{a['address_id']}", token=token, json={
        "recipient": "张三丰", "province_code": "330000", "city_code": "330100", "district_code": "330106",
        "detail": "文三路 91 号", "expected_version": a["version"]})
    assert edited.status_code == 200, edited.text
    assert edited.json()["address"]["phone_masked"] == "138****8000"

    made = shop.call("POST", f"/v1/me/addresses/{b['address_id']}:setDefault", token=token, json={})
    assert made.status_code == 200 and made.json()["address"]["is_default"], made.text
    assert [x["address_id"] for x in book(shop, token)] == [b["address_id"], a["address_id"]]

    deleted = shop.call("DELETE", f"/v1/me/addresses/{b['address_id']}", token=token)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["default_address_id"] == a["address_id"]
    again = shop.call("DELETE", f"/v1/me/addresses/{b['address_id']}", token=token)
    assert again.status_code == 404 and again.json()["error"]["reason"] == "ADDRESS_NOT_FOUND"
    assert [(x["address_id"], x["is_default"]) for x in book(shop, token)] == [(a["address_id"], True)]


def test_a_key_used_for_another_address_is_refused_with_its_reason(shop):
    token = shop.login("addr-key-" + uuid.uuid4().hex[:8])["access_token"]
    body = new_address()
    first = shop.call("POST", "/v1/me/addresses", token=token, json=body)
    assert first.status_code == 200, first.text
    reused = shop.call("POST", "/v1/me/addresses", token=token, json={**body, "detail": "文三路 92 号"})
    assert reused.status_code == 409, reused.text
    assert reused.json()["error"]["reason"] == "IDEMPOTENCY_KEY_REUSED"
    assert PHONE not in reused.text
    repeat = shop.call("POST", "/v1/me/addresses", token=token, json=body)
    assert repeat.status_code == 200 and repeat.json()["address"] == first.json()["address"]
    assert [x["detail"] for x in book(shop, token)] == ["文三路 90 号"]
    spec = shop.call("GET", "/openapi.json", channel=None)
    assert spec.status_code == 200
    assert "IDEMPOTENCY_KEY_REUSED" in spec.json()["paths"]["/v1/me/addresses"]["post"]["x-siyu-reasons"]


def test_bad_input_is_a_400_naming_each_field_and_writes_nothing(shop):
    token = shop.login("addr-bad-" + uuid.uuid4().hex[:8])["access_token"]
    cases = [
        (new_address(district_code="999999"), {"district_code"}),
        (new_address(city_code="310100"), {"city_code"}),
        (new_address(phone="12345", recipient=""), {"phone", "recipient"}),
        (new_address(province_code="ab", detail="x" * 121), {"province_code", "detail"}),
        (new_address(idempotency_key=""), {"idempotency_key"}),
    ]
    for body, fields in cases:
        resp = shop.call("POST", "/v1/me/addresses", token=token, json=body)
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["reason"] == "INVALID_FIELDS"
        assert fields <= set(violations(resp)), (body, resp.text)
    assert book(shop, token) == []

    a = shop.call("POST", "/v1/me/addresses", token=token, json=new_address()).json()["address"]
    resp = shop.call("PATCH", f"/v1/me/addresses/{a['address_id']}", token=token, json={
        "recipient": "李四", "province_code": "330000", "city_code": "330100", "district_code": "110105",
        "detail": "y"})
    assert resp.status_code == 400 and "district_code" in violations(resp), resp.text
    assert resp.status_code == 400
    assert shop.call("PATCH", "/v1/me/addresses/not-an-id", token=token, json={}).status_code == 400
    assert book(shop, token)[0]["recipient"] == "张三"


def test_another_member_or_merchant_cannot_read_or_change_the_book(shop, other_shop):
    owner = shop.login("addr-owner-" + uuid.uuid4().hex[:8])["access_token"]
    a = shop.call("POST", "/v1/me/addresses", token=owner, json=new_address()).json()["address"]
    stranger = shop.login("addr-stranger-" + uuid.uuid4().hex[:8])["access_token"]
    elsewhere = other_shop.login("addr-elsewhere-" + uuid.uuid4().hex[:8])["access_token"]
    for s, token in ((shop, stranger), (other_shop, elsewhere)):
        assert book(s, token) == []
        for method, path, body in (
                ("PATCH", f"/v1/me/addresses/{a['address_id']}", {
                    "recipient": "x", "province_code": "330000", "city_code": "330100", "district_code": "330106",
                    "detail": "y"}),
                ("POST", f"/v1/me/addresses/{a['address_id']}:setDefault", {}),
                ("DELETE", f"/v1/me/addresses/{a['address_id']}", None)):
            resp = s.call(method, path, token=token, json=body)
            assert resp.status_code == 404, resp.text
            assert resp.json()["error"]["reason"] == "ADDRESS_NOT_FOUND"
    # The owner's token does not work with the other merchant's key.
    assert other_shop.call("GET", "/v1/me/addresses", token=owner).status_code == 401
    # Without a member token: refused.
    assert shop.call("GET", "/v1/me/addresses").status_code == 401
    assert book(shop, owner)[0] == a
