"""Freight through the gateway as a shop's staff console and mini-program would use it:
the staff put a freight template, the member's quote and order ship to their address
priced by its region, free shipping above an amount, an excluded region refused with
nothing reserved, bad templates answered 400 with every field named, other merchants and
wrong roles kept out."""
from __future__ import annotations

import uuid


from tests.support.shop import Shop, staff_with

# Tests here read what the merchant holds as a whole, or change it: a new merchant for each.
SHOP_PER_TEST = True

PHONE = "13812348000"
TEMPLATE = {
    "default_rule": {"name": "default", "first": "1", "first_fee": {"amount": "1000", "currency": "CNY"},
                     "additional": "1", "additional_fee": {"amount": "500", "currency": "CNY"}},
    "rules": [{"name": "广东省", "first": "1", "first_fee": {"amount": "800", "currency": "CNY"},
               "additional": "1", "additional_fee": {"amount": "200", "currency": "CNY"}, "regions": ["440000"]}],
    "excluded_regions": ["540000"],
    "free_over": {"amount": "30000", "currency": "CNY"},
}


def violations(resp) -> dict[str, str]:
    return {v["field"]: v["description"] for v in resp.json()["error"].get("field_violations", [])}


def add_address(shop: Shop, token: str, province: str, city: str, district: str) -> dict:
    resp = shop.call("POST", "/v1/me/addresses", token=token, json={
        "idempotency_key": uuid.uuid4().hex, "recipient": "张三", "phone": PHONE, "province_code": province,
        "city_code": city, "district_code": district, "detail": "1 号"})
    assert resp.status_code == 200, resp.text
    return resp.json()["address"]


def quote(shop: Shop, token: str, sku: str, quantity: int, address_id: str = ""):
    return shop.call("POST", "/v1/checkout:quote", token=token, json={
        "lines": [{"sku_id": sku, "quantity": quantity}], "address_id": address_id})


def test_freight_by_region_and_free_shipping_in_quotes_and_orders(shop):
    put = shop.as_staff("PUT", "/v1/staff/freight-templates/current", json={"template": TEMPLATE})
    assert put.status_code == 200, put.text
    assert put.json()["template"]["version"] == "1"
    sku = shop.new_sku(stock=20, price=10000)
    token = shop.login("freight-" + uuid.uuid4().hex[:8])["access_token"]
    home = add_address(shop, token, "440000", "440300", "440305")
    beijing = add_address(shop, token, "110000", "110100", "110101")

    q = quote(shop, token, sku, 2)
    assert q.status_code == 200, q.text
    shown = q.json()["quote"]
    assert (shown["shipping_fee"]["amount"], shown["shipping_address"]["address_id"]) == ("1000", home["address_id"])
    assert shown["shipping_rule"].startswith("广东省") and PHONE not in q.text
    far = quote(shop, token, sku, 2, beijing["address_id"]).json()["quote"]
    assert (far["shipping_fee"]["amount"], far["shipping_rule"]) == ("1500", "default: first 1 unit ¥10 + ¥5 per 1 "
                                                                                  "unit more")
    free = quote(shop, token, sku, 3, beijing["address_id"]).json()["quote"]
    assert (free["shipping_fee"]["amount"], free["shipping_rule"]) == ("0", "free over ¥300")

    placed = shop.call("POST", "/v1/orders", token=token, json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": 2}],
        "address_id": beijing["address_id"]})
    assert placed.status_code == 200, placed.text
    o = placed.json()["order"]
    assert (o["shipping_fee"]["amount"], o["payable"]["amount"]) == ("1500", "21500")
    assert (o["shipping_address"]["city_name"], o["shipping_address"]["phone"]) == ("北京市", "138****8000")
    staff_view = shop.as_staff("GET", f"/v1/staff/orders/{o['order_id']}")
    assert staff_view.status_code == 200, staff_view.text
    assert staff_view.json()["order"]["shipping_address"]["phone"] == PHONE  # the owner ships it


def test_an_excluded_region_is_refused_with_nothing_reserved(shop):
    assert shop.as_staff("PUT", "/v1/staff/freight-templates/current",
                         json={"template": TEMPLATE}).status_code == 200
    sku = shop.new_sku(stock=5)
    before = shop.stock(sku)
    token = shop.login("tibet-" + uuid.uuid4().hex[:8])["access_token"]
    add_address(shop, token, "540000", "540100", "540102")
    for resp in (quote(shop, token, sku, 1), shop.call("POST", "/v1/orders", token=token, json={
            "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": 1}]})):
        # FAILED_PRECONDITION: 400 under the google.rpc.Code mapping.
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["code"] == "FAILED_PRECONDITION"
        assert resp.json()["error"]["reason"] == "REGION_NOT_SHIPPED"
    assert shop.stock(sku) == before


def test_bad_templates_other_merchants_and_wrong_roles(shop, other_shop):
    bad = {**TEMPLATE, "excluded_regions": ["44"], "free_shipping_tiers": ["VIP"],
           "rules": [{**TEMPLATE["rules"][0], "first": "0"}]}
    resp = shop.as_staff("PUT", "/v1/staff/freight-templates/current", json={"template": bad})
    assert resp.status_code == 400, resp.text
    assert {"template.excluded_regions[0]", "template.free_shipping_tiers[0]", "template.rules[0].first"} <= \
        set(violations(resp))
    got = shop.as_staff("GET", "/v1/staff/freight-templates/current")
    assert got.status_code == 200 and not got.json().get("configured", False)

    assert shop.as_staff("PUT", "/v1/staff/freight-templates/current",
                         json={"template": TEMPLATE}).status_code == 200
    stale = shop.as_staff("PUT", "/v1/staff/freight-templates/current",
                          json={"template": TEMPLATE, "expected_version": "5"})
    assert stale.status_code == 409 and stale.json()["error"]["reason"] == "VERSION_CONFLICT", stale.text
    theirs = other_shop.as_staff("GET", "/v1/staff/freight-templates/current")
    assert theirs.status_code == 200 and not theirs.json().get("configured", False)
    token = shop.login("nosy-" + uuid.uuid4().hex[:8])["access_token"]
    as_member = shop.call("GET", "/v1/staff/freight-templates/current", channel=None, token=token)
    assert as_member.status_code in (401, 403)


def weighed_sku(shop: Shop, grams: int, price: int) -> str:
    """An on-shelf SKU weighing `grams` a unit, as the shop's product page reads it back."""
    code = "w-" + uuid.uuid4().hex[:12]
    made = shop.as_staff("POST", "/v1/staff/products", json={
        "code": code, "title": f"Item {code}", "status": "PRODUCT_STATUS_ON_SHELF",
        "skus": [{"code": code + "-1", "list_price": {"amount": str(price), "currency": "CNY"},
                  "initial_stock": "20", "weight_g": str(grams)}]})
    assert made.status_code == 200, made.text
    product = made.json()["product"]
    read = shop.call("GET", f"/v1/products/{product['product_id']}", token=shop.login("w-" + code)["access_token"])
    assert read.status_code == 200, read.text
    assert int(read.json()["product"]["skus"][0]["weight_g"]) == grams
    return product["skus"][0]["sku_id"]


WEIGHT_TEMPLATE = {
    "default_rule": {"name": "by weight", "basis": "FREIGHT_BASIS_WEIGHT", "first": "1000",
                     "first_fee": {"amount": "1200", "currency": "CNY"}, "additional": "1000",
                     "additional_fee": {"amount": "500", "currency": "CNY"}},
    "rules": [{"name": "新疆", "basis": "FREIGHT_BASIS_WEIGHT", "first": "1000", "first_fee": {"amount": "3000", "currency": "CNY"},
               "additional": "1000", "additional_fee": {"amount": "2000", "currency": "CNY"},
               "regions": ["650000"]}],
    "excluded_regions": ["540000"],
    "free_over": {"amount": "30000", "currency": "CNY"},
}


def test_freight_by_weight_counts_the_catalog_weight_of_every_unit(shop):
    sku = weighed_sku(shop, 700, 5000)  # 0.7 kg a unit
    put = shop.as_staff("PUT", "/v1/staff/freight-templates/current", json={"template": WEIGHT_TEMPLATE})
    assert put.status_code == 200, put.text
    token = shop.login("weight-" + uuid.uuid4().hex[:8])["access_token"]
    beijing = add_address(shop, token, "110000", "110100", "110101")
    urumqi = add_address(shop, token, "650000", "650100", "650102")
    tibet = add_address(shop, token, "540000", "540100", "540102")

    one = quote(shop, token, sku, 1, beijing["address_id"]).json()["quote"]  # 0.7 kg: the first kilogram
    assert (one["shipping_fee"]["amount"], one["shipping_rule"]) == ("1200", "by weight: first 1000g ¥12 + ¥5 per "
                                                                             "1000g more")
    three = quote(shop, token, sku, 3, beijing["address_id"]).json()["quote"]  # 2.1 kg: 2 started kilograms more
    assert three["shipping_fee"]["amount"] == str(1200 + 2 * 500)
    remote = quote(shop, token, sku, 2, urumqi["address_id"]).json()["quote"]  # 1.4 kg to a remote region
    assert (remote["shipping_fee"]["amount"], remote["shipping_rule"].split(":")[0]) == (str(3000 + 2000), "新疆")
    free = quote(shop, token, sku, 6, urumqi["address_id"]).json()["quote"]  # ¥300 of goods
    assert (free["shipping_fee"]["amount"], free["shipping_rule"]) == ("0", "free over ¥300")
    refused = quote(shop, token, sku, 1, tibet["address_id"])
    assert refused.status_code == 400 and refused.json()["error"]["reason"] == "REGION_NOT_SHIPPED", refused.text

    placed = shop.call("POST", "/v1/orders", token=token, json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": 3}],
        "address_id": beijing["address_id"]})
    assert placed.status_code == 200, placed.text
    o = placed.json()["order"]
    assert (o["shipping_fee"]["amount"], o["payable"]["amount"]) == ("2200", str(15000 + 2200))



def test_each_staff_role_reads_the_shipping_address_as_it_may(shop, other_shop):
    sku = shop.new_sku(stock=5)
    token = shop.login("roles-" + uuid.uuid4().hex[:8])["access_token"]
    add_address(shop, token, "440000", "440300", "440305")
    placed = shop.call("POST", "/v1/orders", token=token, json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": 1}]})
    assert placed.status_code == 200, placed.text
    order_id = placed.json()["order"]["order_id"]
    regions = ("广东省", "深圳市", "南山区")
    expected = {"OPERATOR": ("张三", PHONE, "1 号"), "FINANCE": ("张三", "138****8000", "1 号"),
                "GUIDE": ("张*", "138****8000", "")}
    for role, (recipient, phone, detail) in expected.items():
        staff = staff_with(shop, role)
        one = shop.call("GET", f"/v1/staff/orders/{order_id}", channel=None, token=staff)
        assert one.status_code == 200, (role, one.text)
        a = one.json()["order"]["shipping_address"]
        assert (a["recipient"], a["phone"], a.get("detail", "")) == (recipient, phone, detail), role
        assert (a["province_name"], a["city_name"], a["district_name"]) == regions
        found = shop.call("GET", "/v1/staff/orders", channel=None, token=staff, params={"member_id": one.json()[
            "order"]["member_id"]})
        assert found.status_code == 200, (role, found.text)
        [listed] = found.json()["orders"]
        b = listed["shipping_address"]
        assert (b["recipient"], b["phone"], b.get("detail", "")) == (recipient, "138****8000", detail), role
        if role == "GUIDE":
            assert PHONE not in one.text + found.text and "1 号" not in one.text + found.text
    # Another shop's guide sees none of it.
    other_guide = staff_with(other_shop, "GUIDE")
    assert other_shop.call("GET", f"/v1/staff/orders/{order_id}", channel=None,
                           token=other_guide).status_code == 404
