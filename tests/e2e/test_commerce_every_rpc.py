"""Every RPC of the commerce core, through the gateway, twice over:

- as merchant B (B's own staff, B's own members, B's own keys) on merchant A's ids: not
  found, and A's data unchanged;
- as merchant A with bad input: 400 with field violations, and nothing changed.

A guard fails as soon as an annotated RPC of the catalog or order service has no case
in either table, so a new route cannot ship without both proofs."""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import Callable

import httpx
import pytest

from gateway.routes import Table
from siyu_kit.ids import new_id
from tests.support.shop import Shop, make_shop, ok
from tests.support import block_routes, wait_until
from tests.support.stored_value import new_package

# Tests here read what the merchant holds as a whole, or change it: a new merchant for each.
SHOP_PER_TEST = True

# The routes of the walking skeleton, proven by test_purchase and the integration tests;
# every other annotated RPC of these services needs a case below.
SKELETON = {"ListProducts", "GetProduct", "UpsertProduct", "GetStock", "PlaceOrder", "GetOrder", "ListMyOrders",
            "CancelOrder", "PayOrder", "HandleSandboxPaymentCallback", "CompleteSandboxPayment"}
BAD_ID = "not-an-id"


def new_key() -> str:
    return uuid.uuid4().hex


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")



class Merchant:
    """One seeded shop with a member and what the cases act on, each made on first use."""

    def __init__(self, shop: Shop, unionid: str):
        self.shop = shop
        self.unionid = unionid

    # ---- callers ------------------------------------------------------------------
    @cached_property
    def member(self) -> str:
        return self.shop.login(self.unionid)["access_token"]

    def as_member(self, method: str, path: str, **kwargs) -> httpx.Response:
        return self.shop.call(method, path, token=self.member, **kwargs)

    def as_staff(self, method: str, path: str, **kwargs) -> httpx.Response:
        return self.shop.as_staff(method, path, **kwargs)

    def as_channel(self, method: str, path: str, **kwargs) -> httpx.Response:
        return self.shop.call(method, path, **kwargs)

    # ---- things to act on ---------------------------------------------------------
    @cached_property
    def product(self) -> dict:
        return self.shop.new_product(stock=50, price=5000)

    @property
    def product_id(self) -> str:
        return self.product["product_id"]

    @property
    def sku(self) -> str:
        return self.product["skus"][0]["sku_id"]

    @cached_property
    def category(self) -> str:
        return ok(self.as_staff("POST", "/v1/staff/categories", json={"name": f"Root {new_key()[:6]}"}))[
            "category"]["category_id"]

    @cached_property
    def live_session(self) -> str:
        return new_id("liv")

    @cached_property
    def flash_sale(self) -> str:
        # Starts in an hour: no case can buy from it by accident.
        now = datetime.now(timezone.utc)
        return ok(self.as_staff("POST", "/v1/staff/flash-sales", json={
            "title": "Hour sale", "sku_id": self.sku, "price": {"amount": "3000", "currency": "CNY"},
            "units": "5", "per_member_limit": 1, "starts_at": rfc3339(now + timedelta(hours=1)),
            "ends_at": rfc3339(now + timedelta(hours=2)), "live_session_id": self.live_session,
            "idempotency_key": new_key()}))["flash_sale"]["flash_sale_id"]

    @cached_property
    def cart(self) -> dict:
        return ok(self.as_member("POST", "/v1/cart/items", json={"sku_id": self.sku, "quantity": "2"}))["cart"]

    def _paid_order(self, quantity: int) -> dict:
        # Units already held aside (a flash sale's pool) stay reserved: wait for this order's only.
        reserved_before = self.stock_now()["reserved"]
        order = ok(self.as_member("POST", "/v1/orders", json={
            "idempotency_key": new_key(), "lines": [{"sku_id": self.sku, "quantity": str(quantity)}]}))["order"]
        self.shop.pay(self.member, order["order_id"])
        # order.paid commits the reservation in the catalog a moment later; wait, so that
        # no case sees the stock move under it.
        wait_until(lambda: self.stock_now()["reserved"] == reserved_before, message="reservation committed")
        return order

    @cached_property
    def paid_order(self) -> dict:
        return self._paid_order(2)

    @property
    def paid_line(self) -> str:
        return self.paid_order["lines"][0]["line_id"]

    @cached_property
    def shipped_order(self) -> dict:
        order = self._paid_order(1)
        ok(self.as_staff("POST", f"/v1/staff/orders/{order['order_id']}:ship",
                         json={"carrier": "SF Express", "tracking_number": "SF100200300"}))
        return order

    @cached_property
    def refund(self) -> str:
        """A refund the member requested on the paid order, waiting for the staff."""
        return ok(self.as_member("POST", f"/v1/orders/{self.paid_order['order_id']}/refunds", json={
            "idempotency_key": new_key(), "lines": [{"line_id": self.paid_line, "quantity": "1"}],
            "reason": "wrong size"}))["refund"]["refund_id"]

    @cached_property
    def custom_settings(self) -> dict:
        return self.shop.update_order_settings(unpaid_expiry_seconds="900")

    # ---- what is there, to compare before and after ------------------------------
    def product_now(self) -> dict:
        return ok(self.as_channel("GET", f"/v1/products/{self.product_id}"))

    def categories_now(self) -> list:
        return ok(self.as_channel("GET", "/v1/categories")).get("categories", [])

    def stock_now(self) -> dict:
        return self.shop.stock(self.sku)

    def flash_sale_now(self) -> dict:
        return ok(self.as_channel("GET", f"/v1/flash-sales/{self.flash_sale}"))

    def flash_sales_now(self) -> list:
        return ok(self.as_channel("GET", "/v1/flash-sales")).get("flash_sales", [])

    def cart_now(self) -> dict:
        return ok(self.as_member("GET", "/v1/cart"))["cart"]

    def order_now(self, order: dict) -> dict:
        """The staff's view: the order with its payments and refunds."""
        return ok(self.as_staff("GET", f"/v1/staff/orders/{order['order_id']}"))

    def my_orders_now(self) -> list:
        return ok(self.as_member("GET", "/v1/orders")).get("orders", [])

    def settings_now(self) -> dict:
        return ok(self.as_staff("GET", "/v1/staff/order-settings"))["settings"]


class World:
    def __init__(self, stack):
        # The same person is a member of both shops: only the merchant tells them apart.
        self.a = Merchant(make_shop(stack), "union-both-shops")
        self.b = Merchant(make_shop(stack), "union-both-shops")


@pytest.fixture(scope="module")
def world(stack) -> World:
    return World(stack)


# The social-selling blocks hold their 400/404/403 table of every route in their own module
# (tests/e2e/test_group_buy.py, test_bargains.py, test_community_group_buy.py,
# test_points_mall.py), each proving with assert_routes_named that no route of its block is left out.
OWN_TABLES = ("Group buy", "Bargain", "Community group buy", "Points mall")


def annotated_routes() -> set[str]:
    own = {rpc for block in OWN_TABLES for rpc in block_routes("siyu/order/v1/order.proto", block)}
    return {r.method_name for r in Table.from_protos(("catalog", "order")).routes} - SKELETON - own


def unchanged(probe: Callable[[], object], act: Callable[[], httpx.Response]) -> httpx.Response:
    """Runs `act` and proves `probe` reads the same before and after it."""
    before = probe()
    resp = act()
    assert probe() == before
    return resp


# ---- merchant B on merchant A's ids ----------------------------------------------------

CROSS_MERCHANT: dict[str, Callable[[World], None]] = {}


def cross(rpc: str):
    def register(case):
        CROSS_MERCHANT[rpc] = case
        return case
    return register


def not_found(resp: httpx.Response) -> None:
    assert resp.status_code in (403, 404), resp.text
    assert resp.json()["error"]["code"] in ("NOT_FOUND", "PERMISSION_DENIED")


@cross("SetProductStatus")
def _(w):
    not_found(unchanged(w.a.product_now, lambda: w.b.as_staff(
        "POST", f"/v1/staff/products/{w.a.product_id}:setStatus", json={"status": "PRODUCT_STATUS_OFF_SHELF"})))


@cross("ListCategories")
def _(w):
    mine = w.a.category
    assert mine in {c["category_id"] for c in w.a.categories_now()}
    assert mine not in {c["category_id"] for c in w.b.categories_now()}


@cross("CreateCategory")
def _(w):
    parent = w.a.category
    name = f"Under A {new_key()[:6]}"
    not_found(unchanged(w.a.categories_now, lambda: w.b.as_staff(
        "POST", "/v1/staff/categories", json={"name": name, "parent_id": parent})))
    assert name not in {c["name"] for c in w.b.categories_now()}


@cross("UpdateCategory")
def _(w):
    category = w.a.category
    not_found(unchanged(w.a.categories_now, lambda: w.b.as_staff(
        "PATCH", f"/v1/staff/categories/{category}", json={"name": "Taken over", "sort_order": 9})))


@cross("AdjustStock")
def _(w):
    sku = w.a.sku
    not_found(unchanged(w.a.stock_now, lambda: w.b.as_staff(
        "POST", f"/v1/staff/skus/{sku}/stock:adjust", json={"delta": "-5", "reason": "write-off",
                                                            "idempotency_key": new_key()})))


@cross("AuditStock")
def _(w):
    not_found(w.b.as_staff("GET", f"/v1/staff/skus/{w.a.sku}/stock:audit"))


@cross("CreateFlashSale")
def _(w):
    sku, now = w.a.sku, datetime.now(timezone.utc)
    not_found(unchanged(w.a.stock_now, lambda: w.b.as_staff("POST", "/v1/staff/flash-sales", json={
        "title": "Not mine", "sku_id": sku, "price": {"amount": "100", "currency": "CNY"}, "units": "5",
        "starts_at": rfc3339(now), "ends_at": rfc3339(now + timedelta(hours=1)), "idempotency_key": new_key()})))
    assert w.b.flash_sales_now() == []


@cross("GetFlashSale")
def _(w):
    not_found(w.b.as_channel("GET", f"/v1/flash-sales/{w.a.flash_sale}"))


@cross("ListFlashSales")
def _(w):
    mine = w.a.flash_sale
    assert mine in {f["flash_sale_id"] for f in w.a.flash_sales_now()}
    assert mine not in {f["flash_sale_id"] for f in w.b.flash_sales_now()}
    by_room = ok(w.b.as_channel("GET", "/v1/flash-sales", params={"live_session_id": w.a.live_session}))
    assert by_room.get("flash_sales", []) == []


@cross("ListStaffProducts")
def _(w):
    mine = w.a.product_id
    assert mine in {p["product_id"] for p in ok(w.a.as_staff("GET", "/v1/staff/products"))["products"]}
    theirs = ok(w.b.as_staff("GET", "/v1/staff/products", params={"page_size": 100})).get("products", [])
    assert mine not in {p["product_id"] for p in theirs}


@cross("GetCart")
def _(w):
    assert w.a.cart["items"]
    # The same person, logged in at B: B's cart knows nothing of A's.
    assert w.b.cart_now().get("items", []) == []


@cross("AddCartItem")
def _(w):
    assert w.a.cart
    not_found(unchanged(w.a.cart_now, lambda: w.b.as_member(
        "POST", "/v1/cart/items", json={"sku_id": w.a.sku, "quantity": "1"})))
    assert w.b.cart_now().get("items", []) == []


@cross("UpdateCartItem")
def _(w):
    assert w.a.cart
    not_found(unchanged(w.a.cart_now, lambda: w.b.as_member(
        "PATCH", f"/v1/cart/items/{w.a.sku}", json={"quantity": "7", "selected": True})))


@cross("RemoveCartItems")
def _(w):
    assert w.a.cart
    # B's member removing a SKU B's cart does not hold may be a no-op or NOT_FOUND; either
    # way A's cart keeps it.
    resp = unchanged(w.a.cart_now, lambda: w.b.as_member("POST", "/v1/cart/items:remove",
                                                         json={"sku_ids": [w.a.sku]}))
    assert resp.status_code in (200, 404), resp.text


@cross("QuoteCheckout")
def _(w):
    not_found(w.b.as_member("POST", "/v1/checkout:quote", json={"lines": [{"sku_id": w.a.sku, "quantity": "1"}]}))


@cross("PlaceFlashSaleOrder")
def _(w):
    sale = w.a.flash_sale
    not_found(unchanged(w.a.flash_sale_now, lambda: w.b.as_member(
        "POST", f"/v1/flash-sales/{sale}:buy", json={"idempotency_key": new_key(), "quantity": "1"})))
    assert w.b.my_orders_now() == []


@cross("ConfirmReceipt")
def _(w):
    order = w.a.shipped_order
    not_found(unchanged(lambda: w.a.order_now(order), lambda: w.b.as_member(
        "POST", f"/v1/orders/{order['order_id']}:confirmReceipt", json={})))


@cross("RequestRefund")
def _(w):
    order, line = w.a.paid_order, w.a.paid_line
    not_found(unchanged(lambda: w.a.order_now(order), lambda: w.b.as_member(
        "POST", f"/v1/orders/{order['order_id']}/refunds",
        json={"idempotency_key": new_key(), "lines": [{"line_id": line, "quantity": "1"}], "reason": "x"})))


@cross("ListOrderRefunds")
def _(w):
    assert w.a.refund
    not_found(w.b.as_member("GET", f"/v1/orders/{w.a.paid_order['order_id']}/refunds"))


@cross("SearchOrders")
def _(w):
    order = w.a.paid_order
    assert order["order_id"] in {o["order_id"] for o in ok(w.a.as_staff("GET", "/v1/staff/orders"))["orders"]}
    theirs = ok(w.b.as_staff("GET", "/v1/staff/orders")).get("orders", [])
    assert order["order_id"] not in {o["order_id"] for o in theirs}
    by_member = ok(w.b.as_staff("GET", "/v1/staff/orders", params={"member_id": order["member_id"]}))
    assert by_member.get("orders", []) == []


@cross("GetOrderAsStaff")
def _(w):
    not_found(w.b.as_staff("GET", f"/v1/staff/orders/{w.a.paid_order['order_id']}"))


@cross("ShipOrder")
def _(w):
    order = w.a.paid_order
    not_found(unchanged(lambda: w.a.order_now(order), lambda: w.b.as_staff(
        "POST", f"/v1/staff/orders/{order['order_id']}:ship", json={"carrier": "SF", "tracking_number": "SF1"})))


@cross("MarkDelivered")
def _(w):
    order = w.a.shipped_order
    not_found(unchanged(lambda: w.a.order_now(order), lambda: w.b.as_staff(
        "POST", f"/v1/staff/orders/{order['order_id']}:markDelivered", json={})))


@cross("CreateRefund")
def _(w):
    order, line = w.a.paid_order, w.a.paid_line
    not_found(unchanged(lambda: w.a.order_now(order), lambda: w.b.as_staff(
        "POST", f"/v1/staff/orders/{order['order_id']}/refunds",
        json={"idempotency_key": new_key(), "lines": [{"line_id": line, "quantity": "1"}], "reason": "x"})))


@cross("ApproveRefund")
def _(w):
    refund, order = w.a.refund, w.a.paid_order
    not_found(unchanged(lambda: w.a.order_now(order), lambda: w.b.as_staff(
        "POST", f"/v1/staff/refunds/{refund}:approve", json={})))


@cross("RejectRefund")
def _(w):
    refund, order = w.a.refund, w.a.paid_order
    not_found(unchanged(lambda: w.a.order_now(order), lambda: w.b.as_staff(
        "POST", f"/v1/staff/refunds/{refund}:reject", json={"note": "no"})))


@cross("ListRefunds")
def _(w):
    refund = w.a.refund
    assert refund in {r["refund_id"] for r in ok(w.a.as_staff("GET", "/v1/staff/refunds"))["refunds"]}
    assert refund not in {r["refund_id"] for r in ok(w.b.as_staff("GET", "/v1/staff/refunds")).get("refunds", [])}
    by_order = ok(w.b.as_staff("GET", "/v1/staff/refunds", params={"order_id": w.a.paid_order["order_id"]}))
    assert by_order.get("refunds", []) == []


@cross("GetPaymentLedger")
def _(w):
    not_found(w.b.as_staff("GET", f"/v1/staff/orders/{w.a.paid_order['order_id']}/ledger"))


@cross("GetOrderSettings")
def _(w):
    assert w.a.custom_settings["unpaid_expiry_seconds"] == "900"
    assert w.b.settings_now()["unpaid_expiry_seconds"] != "900"


@cross("UpdateOrderSettings")
def _(w):
    assert w.a.custom_settings
    theirs = unchanged(w.a.settings_now, lambda: w.b.as_staff("PUT", "/v1/staff/order-settings", json={
        "settings": {**w.b.settings_now(), "unpaid_expiry_seconds": "1200"}}))
    assert ok(theirs)["settings"]["unpaid_expiry_seconds"] == "1200"


@cross("CountMyOrders")
def _(w):
    assert w.a.paid_order
    mine = {c["tab"]: int(c.get("count", "0")) for c in ok(w.a.as_member("GET", "/v1/orders:counts"))["counts"]}
    assert mine["ORDER_TAB_TO_SHIP"] >= 1
    # The same person, logged in at B: B counts none of A's orders.
    theirs = ok(w.b.as_member("GET", "/v1/orders:counts"))["counts"]
    assert {int(c.get("count", "0")) for c in theirs} == {0}


@cross("CancelOrderAsStaff")
def _(w):
    order = ok(w.a.as_member("POST", "/v1/orders", json={
        "idempotency_key": new_key(), "lines": [{"sku_id": w.a.sku, "quantity": "1"}]}))["order"]
    not_found(unchanged(lambda: w.a.order_now(order), lambda: w.b.as_staff(
        "POST", f"/v1/staff/orders/{order['order_id']}:cancel", json={})))
    ok(w.a.as_member("POST", f"/v1/orders/{order['order_id']}:cancel", json={}))


# ---- freight templates (cross-merchant) ----

FREIGHT = {"default_rule": {"name": "default", "first": "1", "first_fee": {"amount": "800", "currency": "CNY"},
                            "additional": "1", "additional_fee": {"amount": "200", "currency": "CNY"}},
           "excluded_regions": ["540000"]}


def freight_now(m: Merchant) -> dict:
    return ok(m.as_staff("GET", "/v1/staff/freight-templates/current"))


@cross("GetFreightTemplate")
def _(w):
    ok(w.a.as_staff("PUT", "/v1/staff/freight-templates/current", json={"template": FREIGHT}))
    assert freight_now(w.a)["configured"]
    assert not freight_now(w.b).get("configured", False)


@cross("PutFreightTemplate")
def _(w):
    ok(w.a.as_staff("PUT", "/v1/staff/freight-templates/current", json={"template": FREIGHT}))
    theirs = unchanged(lambda: freight_now(w.a), lambda: w.b.as_staff(
        "PUT", "/v1/staff/freight-templates/current", json={"template": {**FREIGHT, "excluded_regions": []}}))
    assert ok(theirs)["template"]["version"] == "1"


# ---- WeChat Pay credentials ------------------------------------------------------------

def _wechat_pay_credentials(app_id: str) -> dict:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    def pem(private: bool) -> str:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if private:
            return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()
        return key.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return {"app_id": app_id, "mch_id": "1900000109", "api_v3_key": "a" * 32, "private_key_pem": pem(True),
            "serial_no": "ABCDEF0123", "platform_public_key_pem": pem(False), "platform_public_key_id": "PUB_KEY_ID_1"}


def _wechat_pay_now(m: Merchant) -> list:
    return ok(m.as_staff("GET", "/v1/staff/wechat-pay/credentials")).get("credentials", [])


@cross("SetWechatPayCredentials")
def _(w):
    ok(w.a.as_staff("PUT", "/v1/staff/wechat-pay/credentials/CHANNEL_H5", json=_wechat_pay_credentials("wxa")))
    unchanged(lambda: _wechat_pay_now(w.a), lambda: ok(w.b.as_staff(
        "PUT", "/v1/staff/wechat-pay/credentials/CHANNEL_H5", json=_wechat_pay_credentials("wxb"))))
    assert [c["app_id"] for c in _wechat_pay_now(w.a) if c["channel"] == "CHANNEL_H5"] == ["wxa"]


@cross("ListWechatPayCredentials")
def _(w):
    ok(w.a.as_staff("PUT", "/v1/staff/wechat-pay/credentials/CHANNEL_LIVE", json=_wechat_pay_credentials("wxlive")))
    assert "wxlive" not in [c["app_id"] for c in _wechat_pay_now(w.b)]


# ---- staff lists (cross-merchant) ----

def _staff_skus(m: Merchant, **params) -> list:
    return ok(m.as_staff("GET", "/v1/staff/skus", params={"page_size": 100, **params})).get("skus", [])


@cross("ListStaffSkus")
def _(w):
    sku = w.a.sku
    assert sku in {r["sku"]["sku_id"] for r in _staff_skus(w.a)}
    assert sku not in {r["sku"]["sku_id"] for r in _staff_skus(w.b)}
    assert _staff_skus(w.b, product_id=w.a.product_id) == []


@cross("ListStaffCategories")
def _(w):
    mine = w.a.category
    listed = ok(w.a.as_staff("GET", "/v1/staff/categories", params={"page_size": 100}))["categories"]
    assert mine in {c["category_id"] for c in listed}
    theirs = ok(w.b.as_staff("GET", "/v1/staff/categories", params={"page_size": 100})).get("categories", [])
    assert mine not in {c["category_id"] for c in theirs}
    assert ok(w.b.as_staff("GET", "/v1/staff/categories", params={"parent_id": mine})).get("categories", []) == []


@cross("ListStaffFlashSales")
def _(w):
    sale = w.a.flash_sale
    listed = ok(w.a.as_staff("GET", "/v1/staff/flash-sales", params={"page_size": 100}))["flash_sales"]
    assert sale in {f["flash_sale_id"] for f in listed}
    theirs = ok(w.b.as_staff("GET", "/v1/staff/flash-sales", params={"product_id": w.a.product_id}))
    assert theirs.get("flash_sales", []) == []


# ---- stored value (cross-merchant) ----

@cross("PlaceRechargeOrder")
def _(w):
    package = new_package(w.a.shop)
    not_found(unchanged(w.b.my_orders_now, lambda: w.b.as_member(
        "POST", "/v1/me/recharge-orders", json={"package_id": package, "idempotency_key": new_key()})))


# ---- member service (cross-merchant) ----
# The member service's newer routes (the check-in, referral and profile blocks of
# member.proto) share one table; the guard at the end of the module reads those blocks, so
# a new route in one of them needs a case.
MEMBER_BLOCKS = ("check-in", "referral", "profile", "staff views", "personal data", "segments")
MEMBER_CROSS: dict[str, Callable[[World], None]] = {}


def member_cross(rpc: str):
    def register(case):
        MEMBER_CROSS[rpc] = case
        return case
    return register


# ---- referral (cross-merchant) ----
# The same person is a member of both shops; neither shop's referral data reaches the other.


def _referral_settings(m: Merchant) -> dict:
    return ok(m.as_staff("GET", "/v1/staff/referral-settings"))["settings"]


def _coupon_template(m: Merchant) -> str:
    return ok(m.as_staff("POST", "/v1/staff/coupon-templates", json={
        "idempotency_key": new_key(), "name": "A only", "staff_only": True, "total": "0", "per_member_limit": 1,
        "rule": {"kind": "COUPON_KIND_NO_THRESHOLD", "amount_off": "100", "scope": "COUPON_SCOPE_ALL"},
        "validity": {"days": 7}}))["template"]["template_id"]


@member_cross("GetMyReferral")
def _(w):
    a_code = ok(w.a.as_member("GET", "/v1/me/referral"))["invite_code"]
    friend = w.b.shop.call("POST", "/v1/auth/login", json={"code": f"sandbox:rx-{new_key()[:10]}",
                                                           "invite_code": a_code})
    assert ok(friend)["referral"] == "REFERRAL_BINDING_UNKNOWN_CODE"  # A's code means nothing in B
    b_view = ok(w.b.as_member("GET", "/v1/me/referral"))
    assert b_view["invite_code"] != a_code and not b_view.get("invitees")


@member_cross("GetReferralSettings")
def _(w):
    template = _coupon_template(w.a)
    ok(w.a.as_staff("PUT", "/v1/staff/referral-settings", json={"settings": {
        "enabled": True, "inviter_reward_kind": "REFERRAL_REWARD_KIND_POINTS", "inviter_points": "7",
        "invitee_coupon_template_id": template, "monthly_cap": 9}}))
    b_settings = _referral_settings(w.b)
    assert b_settings.get("invitee_coupon_template_id", "") != template and b_settings["monthly_cap"] != 9


@member_cross("UpdateReferralSettings")
def _(w):
    template = _coupon_template(w.a)
    resp = unchanged(lambda: (_referral_settings(w.a), _referral_settings(w.b)), lambda: w.b.as_staff(
        "PUT", "/v1/staff/referral-settings", json={"settings": {
            "enabled": True, "inviter_reward_kind": "REFERRAL_REWARD_KIND_COUPON",
            "inviter_coupon_template_id": template, "monthly_cap": 3}}))
    assert resp.status_code == 400 and {v["field"] for v in resp.json()["error"]["field_violations"]} == {
        "settings.inviter_coupon_template_id"}  # A's template is not B's


# ---- end of referral (cross-merchant) ----

# ---- suppliers, payment split and finance (cross-merchant) ----

def _supplier_of(m: Merchant) -> str:
    return ok(m.as_staff("POST", "/v1/staff/suppliers", json={"idempotency_key": new_key(), "supplier": {
        "name": "Supplier", "account_kind": "SETTLEMENT_ACCOUNT_KIND_BANK", "settlement_account": "6222 1234"}}))[
        "supplier"]["supplier_id"]


def _suppliers_now(m: Merchant) -> list:
    return ok(m.as_staff("GET", "/v1/staff/suppliers", params={"page_size": 100})).get("suppliers", [])


def _links_now(m: Merchant) -> list:
    return ok(m.as_staff("GET", "/v1/staff/supplier-links", params={"page_size": 100})).get("links", [])


def _split_settings_now(m: Merchant) -> dict:
    return ok(m.as_staff("GET", "/v1/staff/split-settings"))["settings"]


def _today() -> str:
    return datetime.now(timezone(timedelta(hours=8))).date().isoformat()


def _statement_now(m: Merchant) -> dict:
    return ok(m.as_staff("GET", f"/v1/staff/finance/statements/{_today()}"))["statement"]


@cross("CreateSupplier")
def _(w):
    key = new_key()
    body = {"idempotency_key": key, "supplier": {"name": "Same key", "account_kind": "SETTLEMENT_ACCOUNT_KIND_BANK",
                                                  "settlement_account": "6222 0001"}}
    mine = ok(w.a.as_staff("POST", "/v1/staff/suppliers", json=body))["supplier"]["supplier_id"]
    theirs = ok(unchanged(lambda: _suppliers_now(w.a), lambda: w.b.as_staff(
        "POST", "/v1/staff/suppliers", json=body)))["supplier"]["supplier_id"]
    assert theirs != mine  # the same key at another merchant is another supplier


@cross("UpdateSupplier")
def _(w):
    sup = _supplier_of(w.a)
    not_found(unchanged(lambda: _suppliers_now(w.a), lambda: w.b.as_staff(
        "PATCH", f"/v1/staff/suppliers/{sup}", json={"disable": True})))


@cross("ListSuppliers")
def _(w):
    sup = _supplier_of(w.a)
    assert sup not in {s["supplier_id"] for s in _suppliers_now(w.b)}


@cross("LinkSupplierSku")
def _(w):
    sup, sku = _supplier_of(w.a), w.a.sku
    not_found(unchanged(lambda: _links_now(w.a), lambda: w.b.as_staff(
        "PUT", f"/v1/staff/supplier-links/{sku}", json={"supplier_id": sup, "supply_price": {"amount": "1", "currency": "CNY"}})))
    not_found(w.b.as_staff("PUT", f"/v1/staff/supplier-links/{sku}", json={
        "supplier_id": _supplier_of(w.b), "supply_price": {"amount": "1", "currency": "CNY"}}))  # A's SKU is not in B's catalog


@cross("UnlinkSupplierSku")
def _(w):
    sup, sku = _supplier_of(w.a), w.a.sku
    ok(w.a.as_staff("PUT", f"/v1/staff/supplier-links/{sku}", json={"supplier_id": sup,
                                                                    "supply_price": {"amount": "100", "currency": "CNY"}}))
    not_found(unchanged(lambda: _links_now(w.a), lambda: w.b.as_staff("DELETE", f"/v1/staff/supplier-links/{sku}")))


@cross("ListSupplierLinks")
def _(w):
    sup = _supplier_of(w.a)
    not_found(w.b.as_staff("GET", "/v1/staff/supplier-links", params={"supplier_id": sup}))


@cross("GetSupplierPayable")
def _(w):
    sup = _supplier_of(w.a)
    not_found(w.b.as_staff("GET", f"/v1/staff/suppliers/{sup}/payable",
                           params={"from_day": _today(), "to_day": _today()}))


@cross("GetOrderSplit")
def _(w):
    not_found(w.b.as_staff("GET", f"/v1/staff/orders/{w.a.paid_order['order_id']}/split"))


@cross("GetSplitSettings")
def _(w):
    ok(w.a.as_staff("PUT", "/v1/staff/split-settings", json={"settings": {"platform_fee_bp": 123}}))
    assert _split_settings_now(w.b).get("platform_fee_bp", 0) != 123


@cross("UpdateSplitSettings")
def _(w):
    unchanged(lambda: _split_settings_now(w.a), lambda: ok(w.b.as_staff(
        "PUT", "/v1/staff/split-settings", json={"settings": {"platform_fee_bp": 77}})))


@cross("GetSettlementStatement")
def _(w):
    before = _statement_now(w.b)
    order = w.a._paid_order(1)
    wait_until(lambda: int(_statement_now(w.a)["sales"].get("amount", 0)) >= int(order["payable"]["amount"]),
               message="A's sale in A's statement")
    assert _statement_now(w.b) == before


@cross("ExportSettlementStatement")
def _(w):
    def export(m: Merchant) -> bytes:
        resp = m.as_staff("GET", "/v1/staff/finance/statements:export", params={"from_day": _today(), "to_day": _today()})
        assert resp.status_code == 200, resp.text
        return resp.content
    before = export(w.b)
    w.a._paid_order(1)
    assert export(w.b) == before


@cross("ReconcilePayments")
def _(w):
    payment = w.a.order_now(w.a.paid_order)["order"]["payment_id"]
    resp = w.b.as_staff("GET", f"/v1/staff/finance/reconciliations/{_today()}")
    assert resp.status_code == 200, resp.text
    assert payment not in resp.text


# ---- end of suppliers, payment split and finance (cross-merchant) ----


def test_every_new_route_has_a_cross_merchant_case():
    assert annotated_routes() == set(CROSS_MERCHANT)


@pytest.mark.parametrize("rpc", sorted(CROSS_MERCHANT))
def test_merchant_b_cannot_reach_merchant_a(world, rpc):
    CROSS_MERCHANT[rpc](world)


# ---- bad input ---------------------------------------------------------------------

BAD_INPUT: dict[str, Callable[[Merchant], None]] = {}


def bad(rpc: str):
    def register(case):
        BAD_INPUT[rpc] = case
        return case
    return register


def refused(resp: httpx.Response, *fields: str) -> None:
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "INVALID_ARGUMENT" and error["request_id"]
    named = {v["field"] for v in error.get("field_violations", [])}
    assert set(fields) <= named, f"expected violations of {fields}, got {error}"


@bad("SetProductStatus")
def _(m):
    refused(unchanged(m.product_now, lambda: m.as_staff(
        "POST", f"/v1/staff/products/{m.product_id}:setStatus", json={"status": "PRODUCT_STATUS_UNSPECIFIED"})),
        "status")


@bad("ListCategories")
def _(m):
    refused(m.as_channel("GET", "/v1/categories", params={"parent": "x"}), "parent")


@bad("CreateCategory")
def _(m):
    refused(unchanged(m.categories_now, lambda: m.as_staff(
        "POST", "/v1/staff/categories", json={"name": "", "parent_id": BAD_ID})), "name", "parent_id")


@bad("UpdateCategory")
def _(m):
    refused(unchanged(m.categories_now, lambda: m.as_staff(
        "PATCH", f"/v1/staff/categories/{BAD_ID}", json={"name": "Renamed"})), "category_id")


@bad("AdjustStock")
def _(m):
    sku = m.sku
    refused(unchanged(m.stock_now, lambda: m.as_staff(
        "POST", f"/v1/staff/skus/{sku}/stock:adjust", json={"delta": "0", "reason": "count"})),
        "delta", "idempotency_key")


@bad("AuditStock")
def _(m):
    refused(m.as_staff("GET", f"/v1/staff/skus/{BAD_ID}/stock:audit"), "sku_id")


@bad("CreateFlashSale")
def _(m):
    sku, now = m.sku, datetime.now(timezone.utc)

    def nothing_moved():
        return m.stock_now(), m.flash_sales_now()
    refused(unchanged(nothing_moved, lambda: m.as_staff("POST", "/v1/staff/flash-sales", json={
        "title": "Backwards", "sku_id": sku, "price": {"amount": "100", "currency": "CNY"}, "units": "0",
        "starts_at": rfc3339(now + timedelta(hours=2)), "ends_at": rfc3339(now + timedelta(hours=1)),
        "idempotency_key": new_key()})), "units")
    # Ending before it starts is judged once every field is well-formed.
    refused(unchanged(nothing_moved, lambda: m.as_staff("POST", "/v1/staff/flash-sales", json={
        "title": "Backwards", "sku_id": sku, "price": {"amount": "100", "currency": "CNY"}, "units": "1",
        "starts_at": rfc3339(now + timedelta(hours=2)), "ends_at": rfc3339(now + timedelta(hours=1)),
        "idempotency_key": new_key()})), "ends_at")


@bad("GetFlashSale")
def _(m):
    refused(m.as_channel("GET", f"/v1/flash-sales/{BAD_ID}"), "flash_sale_id")


@bad("ListFlashSales")
def _(m):
    refused(m.as_channel("GET", "/v1/flash-sales", params={"page_size": "1000"}), "page_size")


@bad("ListStaffProducts")
def _(m):
    refused(m.as_staff("GET", "/v1/staff/products", params={"page_size": "1000"}), "page_size")
    refused(m.as_staff("GET", "/v1/staff/products", params={"status": "SOLD"}), "status")


@bad("GetCart")
def _(m):
    refused(m.as_member("GET", "/v1/cart", params={"sku_id": "x"}), "sku_id")


@bad("AddCartItem")
def _(m):
    sku = m.sku
    refused(unchanged(m.cart_now, lambda: m.as_member("POST", "/v1/cart/items", json={"sku_id": sku, "quantity": "0"})),
            "quantity")
    refused(unchanged(m.cart_now, lambda: m.as_member("POST", "/v1/cart/items", json={"sku_id": BAD_ID,
                                                                                       "quantity": "1"})),
            "sku_id")


@bad("UpdateCartItem")
def _(m):
    assert m.cart
    refused(unchanged(m.cart_now, lambda: m.as_member("PATCH", f"/v1/cart/items/{m.sku}",
                                                      json={"quantity": "0", "selected": True})), "quantity")


@bad("RemoveCartItems")
def _(m):
    assert m.cart
    refused(unchanged(m.cart_now, lambda: m.as_member("POST", "/v1/cart/items:remove",
                                                      json={"sku_ids": [BAD_ID]})), "sku_ids[0]")


@bad("QuoteCheckout")
def _(m):
    refused(m.as_member("POST", "/v1/checkout:quote", json={"lines": [{"sku_id": m.sku, "quantity": "0"}]}),
            "lines[0].quantity")


@bad("PlaceFlashSaleOrder")
def _(m):
    sale = m.flash_sale

    def nothing_moved():
        return m.flash_sale_now(), m.my_orders_now()
    refused(unchanged(nothing_moved, lambda: m.as_member("POST", f"/v1/flash-sales/{sale}:buy",
                                                         json={"quantity": "-1"})), "idempotency_key", "quantity")


@bad("ConfirmReceipt")
def _(m):
    refused(m.as_member("POST", f"/v1/orders/{BAD_ID}:confirmReceipt", json={}), "order_id")


@bad("RequestRefund")
def _(m):
    order, line = m.paid_order, m.paid_line
    refused(unchanged(lambda: m.order_now(order), lambda: m.as_member(
        "POST", f"/v1/orders/{order['order_id']}/refunds",
        json={"idempotency_key": new_key(), "lines": [{"line_id": line, "quantity": "0"}]})), "lines[0].quantity")


@bad("ListOrderRefunds")
def _(m):
    refused(m.as_member("GET", f"/v1/orders/{BAD_ID}/refunds"), "order_id")


@bad("SearchOrders")
def _(m):
    refused(m.as_staff("GET", "/v1/staff/orders", params={"page_size": "1000"}), "page_size")


@bad("GetOrderAsStaff")
def _(m):
    refused(m.as_staff("GET", f"/v1/staff/orders/{BAD_ID}"), "order_id")


@bad("ShipOrder")
def _(m):
    order = m.paid_order
    refused(unchanged(lambda: m.order_now(order), lambda: m.as_staff(
        "POST", f"/v1/staff/orders/{order['order_id']}:ship", json={"carrier": "", "tracking_number": ""})),
        "carrier", "tracking_number")


@bad("MarkDelivered")
def _(m):
    refused(m.as_staff("POST", f"/v1/staff/orders/{BAD_ID}:markDelivered", json={}), "order_id")


@bad("CreateRefund")
def _(m):
    order, line = m.paid_order, m.paid_line
    refused(unchanged(lambda: m.order_now(order), lambda: m.as_staff(
        "POST", f"/v1/staff/orders/{order['order_id']}/refunds",
        json={"idempotency_key": new_key(), "lines": [{"line_id": line, "quantity": "0"}]})), "lines[0].quantity")


@bad("ApproveRefund")
def _(m):
    refused(m.as_staff("POST", f"/v1/staff/refunds/{BAD_ID}:approve", json={}), "refund_id")


@bad("RejectRefund")
def _(m):
    refused(m.as_staff("POST", f"/v1/staff/refunds/{BAD_ID}:reject", json={"note": "no"}), "refund_id")


@bad("ListRefunds")
def _(m):
    refused(m.as_staff("GET", "/v1/staff/refunds", params={"page_size": "1000"}), "page_size")


@bad("GetPaymentLedger")
def _(m):
    refused(m.as_staff("GET", f"/v1/staff/orders/{BAD_ID}/ledger"), "order_id")


@bad("GetOrderSettings")
def _(m):
    refused(m.as_staff("GET", "/v1/staff/order-settings", params={"merchant_id": "mch_other"}), "merchant_id")


@bad("UpdateOrderSettings")
def _(m):
    def put():
        return m.as_staff("PUT", "/v1/staff/order-settings", json={
            "settings": {**m.settings_now(), "unpaid_expiry_seconds": "0", "shipping_fee": {"amount": "-1",
                                                                                           "currency": "CNY"}}})
    refused(unchanged(m.settings_now, put), "settings.unpaid_expiry_seconds", "settings.shipping_fee.amount")


@bad("CountMyOrders")
def _(m):
    refused(m.as_member("GET", "/v1/orders:counts", params={"member_id": "mem_other"}), "member_id")


@bad("CancelOrderAsStaff")
def _(m):
    refused(m.as_staff("POST", f"/v1/staff/orders/{BAD_ID}:cancel", json={}), "order_id")


# ---- freight templates (bad input) ----

@bad("GetFreightTemplate")
def _(m):
    refused(m.as_staff("GET", "/v1/staff/freight-templates/current", params={"merchant_id": "mch_other"}),
            "merchant_id")


@bad("PutFreightTemplate")
def _(m):
    def put():
        return m.as_staff("PUT", "/v1/staff/freight-templates/current", json={"template": {
            **FREIGHT, "excluded_regions": ["44"], "default_rule": {**FREIGHT["default_rule"], "first": "0"}}})
    refused(unchanged(lambda: freight_now(m), put), "template.excluded_regions[0]", "template.default_rule.first")


@bad("SetWechatPayCredentials")
def _(m):
    body = {**_wechat_pay_credentials("wx bad"), "api_v3_key": "short", "private_key_pem": "not a key"}
    resp = unchanged(lambda: _wechat_pay_now(m), lambda: m.as_staff(
        "PUT", "/v1/staff/wechat-pay/credentials/CHANNEL_MINI_PROGRAM", json=body))
    refused(resp, "app_id", "api_v3_key")


@bad("ListWechatPayCredentials")
def _(m):
    refused(m.as_staff("GET", "/v1/staff/wechat-pay/credentials", params={"merchant_id": "mch_other"}),
            "merchant_id")


# ---- staff lists (bad input) ----

@bad("ListStaffSkus")
def _(m):
    refused(m.as_staff("GET", "/v1/staff/skus", params={"page_size": "101", "product_id": BAD_ID}),
            "page_size", "product_id")
    refused(m.as_staff("GET", "/v1/staff/skus", params={"max_available": "-1", "code_prefix": "a b"}),
            "max_available", "code_prefix")
    refused(m.as_staff("GET", "/v1/staff/skus", params={"page_token": "garbage"}), "page_token")


@bad("ListStaffCategories")
def _(m):
    refused(m.as_staff("GET", "/v1/staff/categories", params={"parent_id": BAD_ID, "page_size": "-1"}),
            "parent_id", "page_size")
    refused(m.as_staff("GET", "/v1/staff/categories", params={"parent_id": m.category, "roots_only": "true"}),
            "roots_only")


@bad("ListStaffFlashSales")
def _(m):
    refused(m.as_staff("GET", "/v1/staff/flash-sales", params={"product_id": BAD_ID, "page_size": "1000"}),
            "product_id", "page_size")
    refused(m.as_staff("GET", "/v1/staff/flash-sales", params={
        "starts_from": "2026-01-02T00:00:00Z", "starts_before": "2026-01-01T00:00:00Z"}), "starts_before")


# ---- stored value (bad input) ----

@bad("PlaceRechargeOrder")
def _(m):
    refused(unchanged(m.my_orders_now, lambda: m.as_member(
        "POST", "/v1/me/recharge-orders", json={"package_id": BAD_ID})), "package_id", "idempotency_key")


# ---- suppliers, payment split and finance (bad input) ----

@bad("CreateSupplier")
def _(m):
    refused(unchanged(lambda: _suppliers_now(m), lambda: m.as_staff("POST", "/v1/staff/suppliers", json={
        "idempotency_key": "", "supplier": {"name": "", "phone": "call me", "settlement_account": ""}})),
        "idempotency_key", "supplier.name", "supplier.phone", "supplier.account_kind", "supplier.settlement_account")


@bad("UpdateSupplier")
def _(m):
    sup = _supplier_of(m)
    refused(m.as_staff("PATCH", f"/v1/staff/suppliers/{BAD_ID}", json={"disable": True}), "supplier_id")
    refused(unchanged(lambda: _suppliers_now(m), lambda: m.as_staff(
        "PATCH", f"/v1/staff/suppliers/{sup}", json={"supplier": {"name": "x" * 101}})), "supplier.name")


@bad("ListSuppliers")
def _(m):
    refused(m.as_staff("GET", "/v1/staff/suppliers", params={"page_size": "-1", "page_token": BAD_ID}),
            "page_size", "page_token")


@bad("LinkSupplierSku")
def _(m):
    refused(unchanged(lambda: _links_now(m), lambda: m.as_staff("PUT", f"/v1/staff/supplier-links/{BAD_ID}", json={
        "supplier_id": BAD_ID, "supply_price": {"amount": "-1", "currency": "CNY"}})), "sku_id", "supplier_id", "supply_price.amount")


@bad("UnlinkSupplierSku")
def _(m):
    refused(m.as_staff("DELETE", f"/v1/staff/supplier-links/{BAD_ID}"), "sku_id")


@bad("ListSupplierLinks")
def _(m):
    refused(m.as_staff("GET", "/v1/staff/supplier-links", params={"supplier_id": BAD_ID, "page_size": "101"}),
            "supplier_id", "page_size")


@bad("GetSupplierPayable")
def _(m):
    sup = _supplier_of(m)
    refused(m.as_staff("GET", f"/v1/staff/suppliers/{sup}/payable", params={"from_day": "2026-1-1"}),
            "from_day", "to_day")
    refused(m.as_staff("GET", f"/v1/staff/suppliers/{sup}/payable",
                       params={"from_day": "2026-01-01", "to_day": "2026-12-31"}), "to_day")


@bad("GetOrderSplit")
def _(m):
    refused(m.as_staff("GET", f"/v1/staff/orders/{BAD_ID}/split"), "order_id")


@bad("GetSplitSettings")
def _(m):
    refused(m.as_staff("GET", "/v1/staff/split-settings", params={"merchant_id": "mch_other"}), "merchant_id")


@bad("UpdateSplitSettings")
def _(m):
    refused(unchanged(lambda: _split_settings_now(m), lambda: m.as_staff("PUT", "/v1/staff/split-settings", json={
        "settings": {"platform_fee_bp": -1, "provider_fee_bp": 1001, "max_share_bp": 10001}})),
        "settings.platform_fee_bp", "settings.provider_fee_bp", "settings.max_share_bp")


@bad("GetSettlementStatement")
def _(m):
    refused(m.as_staff("GET", "/v1/staff/finance/statements/2026-02-30"), "day")


@bad("ExportSettlementStatement")
def _(m):
    refused(m.as_staff("GET", "/v1/staff/finance/statements:export", params={"from_day": "2026-02-01",
                                                                               "to_day": "2026-01-01"}), "to_day")


@bad("ReconcilePayments")
def _(m):
    refused(m.as_staff("GET", "/v1/staff/finance/reconciliations/20260101"), "day")


# ---- end of suppliers, payment split and finance (bad input) ----


def test_every_new_route_has_a_bad_input_case():
    assert annotated_routes() == set(BAD_INPUT)


@pytest.mark.parametrize("rpc", sorted(BAD_INPUT))
def test_bad_input_is_refused_with_field_violations_and_changes_nothing(world, rpc):
    BAD_INPUT[rpc](world.a)


# ---- check-in (member service) ----
# The member service's check-in routes get the same two proofs, in tables of their own (the
# guards above cover the catalog and order services).

CHECKIN_BAD_INPUT: dict[str, Callable[[Merchant], None]] = {}


def checkin_routes() -> set[str]:
    return {r.method_name for r in Table.from_protos(("member",)).routes if "CheckIn" in r.method_name}


def _checkin_bad(rpc: str):
    def register(case):
        CHECKIN_BAD_INPUT[rpc] = case
        return case
    return register


def _check_in_settings_now(m: Merchant) -> dict:
    return ok(m.as_staff("GET", "/v1/staff/checkin-settings"))


def _calendar_now(m: Merchant) -> dict:
    return ok(m.as_member("GET", "/v1/me/check-ins"))


@member_cross("CheckIn")
def _(w):
    # The same person checks in at A: at B it is not checked in and has no points from it.
    ok(w.a.as_member("POST", "/v1/me/check-ins", json={}))
    assert _calendar_now(w.a)["checked_in_today"] is True
    assert _calendar_now(w.b)["checked_in_today"] is False
    assert [e for e in ok(w.b.as_member("GET", "/v1/me/points")).get("entries", [])
            if e["source"] == "POINTS_SOURCE_CHECK_IN"] == []
    # A's member token on B's channel key: refused, and nothing is written at B.
    resp = unchanged(lambda: _calendar_now(w.b), lambda: w.b.shop.call(
        "POST", "/v1/me/check-ins", token=w.a.member, json={}))
    assert resp.status_code in (401, 403, 404), resp.text


@member_cross("GetCheckInCalendar")
def _(w):
    ok(w.a.as_member("POST", "/v1/me/check-ins", json={}))
    assert _calendar_now(w.a)["check_ins"]
    assert _calendar_now(w.b)["check_ins"] == []


@member_cross("GetCheckInSettings")
def _(w):
    mine = _check_in_settings_now(w.a)
    if mine["version"] == "0":
        mine = ok(w.a.as_staff("PUT", "/v1/staff/checkin-settings", json={
            "settings": {"day_rewards": ["7", "8"], "growth": "2"}, "expected_version": "0"}))
    assert _check_in_settings_now(w.b)["settings"] != mine["settings"]


@member_cross("UpdateCheckInSettings")
def _(w):
    theirs = _check_in_settings_now(w.b)
    unchanged(lambda: _check_in_settings_now(w.a), lambda: ok(w.b.as_staff("PUT", "/v1/staff/checkin-settings", json={
        "settings": {"day_rewards": ["1", "2", "3"], "growth": "0"}, "expected_version": theirs["version"]})))


@_checkin_bad("CheckIn")
def _(m):
    # CheckIn takes no fields: a call without a member is refused and writes nothing.
    resp = unchanged(lambda: _calendar_now(m), lambda: m.as_channel("POST", "/v1/me/check-ins", json={}))
    assert resp.status_code == 401, resp.text


@_checkin_bad("GetCheckInCalendar")
def _(m):
    refused(m.as_member("GET", "/v1/me/check-ins", params={"month": "2026-13"}), "month")


@_checkin_bad("GetCheckInSettings")
def _(m):
    # No fields to get wrong: a member's token is refused.
    assert m.as_member("GET", "/v1/staff/checkin-settings").status_code in (401, 403)


@_checkin_bad("UpdateCheckInSettings")
def _(m):
    refused(unchanged(lambda: _check_in_settings_now(m), lambda: m.as_staff(
        "PUT", "/v1/staff/checkin-settings", json={"settings": {"day_rewards": [], "growth": "-1"},
                                                   "expected_version": "-1"})),
            "settings.day_rewards", "settings.growth", "expected_version")


def test_every_check_in_route_has_a_bad_input_case():
    assert checkin_routes() == set(CHECKIN_BAD_INPUT)


@pytest.mark.parametrize("rpc", sorted(CHECKIN_BAD_INPUT))
def test_check_in_bad_input_is_refused_and_changes_nothing(world, rpc):
    CHECKIN_BAD_INPUT[rpc](world.a)
# ---- end of check-in ----


# ---- member profile (cross-merchant) ----


def profile_of(m: Merchant) -> dict:
    return ok(m.as_member("GET", "/v1/me/profile"))["profile"]


def member_id_of(m: Merchant) -> str:
    return profile_of(m)["member_id"]


def a_token_at_b(w, method: str, path: str, **kwargs) -> httpx.Response:
    """Merchant A's member token presented with merchant B's channel key."""
    return w.b.shop.call(method, path, token=w.a.member, **kwargs)


def refused_elsewhere(resp: httpx.Response) -> None:
    assert resp.status_code in (401, 403, 404), resp.text


@member_cross("GetMyProfile")
def _(w):
    # The same person in both shops is two members; B's never shows A's profile.
    ok(w.a.as_member("POST", "/v1/me/profile:consent", json={"consent": True}))
    assert profile_of(w.b)["member_id"] != member_id_of(w.a)
    refused_elsewhere(a_token_at_b(w, "GET", "/v1/me/profile"))


@member_cross("UpdateMyProfile")
def _(w):
    refused_elsewhere(unchanged(lambda: profile_of(w.a), lambda: a_token_at_b(
        w, "PATCH", "/v1/me/profile", json={"expected_version": "1", "nickname": "from B"})))


@member_cross("SetMarketingConsent")
def _(w):
    refused_elsewhere(unchanged(lambda: profile_of(w.a), lambda: a_token_at_b(
        w, "POST", "/v1/me/profile:consent", json={"consent": False})))


@member_cross("RevealMemberPhone")
def _(w):
    member_id = member_id_of(w.a)
    not_found(w.b.as_staff("POST", f"/v1/staff/members/{member_id}:revealPhone", json={"reason": "curious"}))
    assert not ok(w.b.as_staff("GET", "/v1/staff/audit-entries", params={"target_id": member_id})).get("entries")


@member_cross("SetMemberBirthday")
def _(w):
    member_id = member_id_of(w.a)
    not_found(unchanged(lambda: profile_of(w.a), lambda: w.b.as_staff(
        "POST", f"/v1/staff/members/{member_id}:setBirthday",
        json={"birthday": {"month": 1, "day": 1}, "reason": "wrong shop"})))


# ---- end of member profile ----


# ---- staff views (cross-merchant) ----

@member_cross("SearchMembers")
def _(w):
    member_id = member_id_of(w.a)
    mine = ok(w.a.as_staff("GET", "/v1/staff/members:search", params={"page_size": 100}))["members"]
    assert member_id in {m["member_id"] for m in mine}
    theirs = ok(w.b.as_staff("GET", "/v1/staff/members:search", params={"page_size": 100})).get("members", [])
    assert member_id not in {m["member_id"] for m in theirs}


@member_cross("GetMember360")
def _(w):
    member_id = member_id_of(w.a)
    assert ok(w.a.as_staff("GET", f"/v1/staff/members/{member_id}/overview"))["member"]["profile"][
        "member_id"] == member_id
    not_found(w.b.as_staff("GET", f"/v1/staff/members/{member_id}/overview"))


# ---- end of staff views (cross-merchant) ----


# ---- personal data (cross-merchant) ----


def _a_export(w) -> str:
    return ok(w.a.as_member("POST", "/v1/me/data-exports", json={"idempotency_key": new_key()}))["export"]["export_id"]


@member_cross("RequestDataExport")
def _(w):
    refused_elsewhere(a_token_at_b(w, "POST", "/v1/me/data-exports", json={"idempotency_key": new_key()}))


@member_cross("GetDataExport")
def _(w):
    export_id = _a_export(w)
    not_found(w.b.as_member("GET", f"/v1/me/data-exports/{export_id}"))
    refused_elsewhere(a_token_at_b(w, "GET", f"/v1/me/data-exports/{export_id}"))


@member_cross("DownloadDataExport")
def _(w):
    export_id = _a_export(w)
    not_found(w.b.as_member("GET", f"/v1/me/data-exports/{export_id}/document"))
    refused_elsewhere(a_token_at_b(w, "GET", f"/v1/me/data-exports/{export_id}/document"))


@member_cross("EraseMe")
def _(w):
    # A's member token with B's key erases nobody: A's member keeps their session.
    refused_elsewhere(a_token_at_b(w, "POST", "/v1/me:erase", json={"idempotency_key": new_key(),
                                                                     "confirmation": "ERASE"}))
    assert ok(w.a.as_member("GET", "/v1/me"))["member"]["member_id"]


@member_cross("AcknowledgeErasure")
def _(w):
    # Internal only: no route reaches it from outside, for any merchant.
    assert w.b.shop.call("POST", "/v1/me:acknowledgeErasure", token=w.a.member, json={}).status_code == 404


# ---- end of personal data (cross-merchant) ----


# ---- segments (cross-merchant) ----
# Tags, RFM settings and segments are the merchant's: B neither sees nor changes A's.


def _tag_group(m: Merchant) -> str:
    return ok(m.as_staff("POST", "/v1/staff/tag-groups", json={"name": f"g-{new_key()[:8]}"}))["group"]["group_id"]


def _tag(m: Merchant) -> str:
    return ok(m.as_staff("POST", f"/v1/staff/tag-groups/{_tag_group(m)}/tags",
                         json={"name": f"t-{new_key()[:8]}"}))["tag"]["tag_id"]


def _tag_groups(m: Merchant) -> list:
    return ok(m.as_staff("GET", "/v1/staff/tag-groups")).get("groups", [])


def _segment(m: Merchant, tag_id: str) -> str:
    return ok(m.as_staff("POST", "/v1/staff/segments", json={"name": "s", "rule": {"conditions": [
        {"field": "tag", "op": "any", "values": [tag_id]}]}}))["segment"]["segment_id"]


def _tagged(m: Merchant, tag_id: str) -> str:
    return ok(m.as_staff("POST", "/v1/staff/segments:preview", json={"rule": {"conditions": [
        {"field": "tag", "op": "any", "values": [tag_id]}]}})).get("member_count", "0")


def _rfm(m: Merchant) -> dict:
    return ok(m.as_staff("GET", "/v1/staff/rfm-settings"))["settings"]


RFM = {"recency_days": [1, 2, 3, 4], "frequency_counts": [1, 2, 3, 4], "monetary_amounts": ["1", "2", "3", "4"],
       "midpoint": 2, "lapsed_days": 9}


@member_cross("GetRfmSettings")
def _(w):
    ok(w.a.as_staff("PUT", "/v1/staff/rfm-settings", json={"settings": RFM}))
    assert _rfm(w.b)["lapsed_days"] != 9


@member_cross("UpdateRfmSettings")
def _(w):
    unchanged(lambda: _rfm(w.a), lambda: ok(w.b.as_staff("PUT", "/v1/staff/rfm-settings",
                                                         json={"settings": {**RFM, "lapsed_days": 11}})))


@member_cross("CreateTagGroup")
def _(w):
    name = f"same-{new_key()[:6]}"
    ok(w.a.as_staff("POST", "/v1/staff/tag-groups", json={"name": name}))
    ok(w.b.as_staff("POST", "/v1/staff/tag-groups", json={"name": name}))   # names are per merchant


@member_cross("ListTagGroups")
def _(w):
    group = _tag_group(w.a)
    assert group not in [g["group_id"] for g in _tag_groups(w.b)]


@member_cross("DeleteTagGroup")
def _(w):
    group = _tag_group(w.a)
    not_found(w.b.as_staff("DELETE", f"/v1/staff/tag-groups/{group}"))
    assert group in [g["group_id"] for g in _tag_groups(w.a)]


@member_cross("CreateTag")
def _(w):
    group = _tag_group(w.a)
    not_found(unchanged(lambda: _tag_groups(w.a), lambda: w.b.as_staff(
        "POST", f"/v1/staff/tag-groups/{group}/tags", json={"name": "x"})))


@member_cross("DeleteTag")
def _(w):
    tag_id = _tag(w.a)
    not_found(unchanged(lambda: _tag_groups(w.a), lambda: w.b.as_staff("DELETE", f"/v1/staff/tags/{tag_id}")))


@member_cross("TagMembers")
def _(w):
    tag_id, member_id = _tag(w.a), member_id_of(w.a)
    not_found(w.b.as_staff("POST", f"/v1/staff/tags/{tag_id}:tagMembers", json={"member_ids": [member_id]}))
    assert _tagged(w.a, tag_id) == "0"
    theirs = _tag(w.b)   # A's member is no member of B
    assert ok(w.b.as_staff("POST", f"/v1/staff/tags/{theirs}:tagMembers",
                           json={"member_ids": [member_id]}))["unknown_member_ids"] == [member_id]


@member_cross("UntagMembers")
def _(w):
    tag_id, member_id = _tag(w.a), member_id_of(w.a)
    ok(w.a.as_staff("POST", f"/v1/staff/tags/{tag_id}:tagMembers", json={"member_ids": [member_id]}))
    not_found(w.b.as_staff("POST", f"/v1/staff/tags/{tag_id}:untagMembers", json={"member_ids": [member_id]}))
    assert _tagged(w.a, tag_id) == "1"


@member_cross("PreviewSegment")
def _(w):
    tag_id, member_id = _tag(w.a), member_id_of(w.a)
    ok(w.a.as_staff("POST", f"/v1/staff/tags/{tag_id}:tagMembers", json={"member_ids": [member_id]}))
    assert (_tagged(w.a, tag_id), _tagged(w.b, tag_id)) == ("1", "0")


@member_cross("CreateSegment")
def _(w):
    tag_id = _tag(w.a)
    mine = _segment(w.b, tag_id)   # a rule naming A's tag selects nobody at B
    assert ok(w.b.as_staff("GET", f"/v1/staff/segments/{mine}"))["segment"].get("member_count", "0") == "0"


@member_cross("GetSegment")
def _(w):
    not_found(w.b.as_staff("GET", f"/v1/staff/segments/{_segment(w.a, _tag(w.a))}"))


@member_cross("ListSegments")
def _(w):
    seg = _segment(w.a, _tag(w.a))
    assert seg not in [s["segment_id"] for s in ok(w.b.as_staff("GET", "/v1/staff/segments")).get("segments", [])]


@member_cross("ListSegmentMembers")
def _(w):
    not_found(w.b.as_staff("GET", f"/v1/staff/segments/{_segment(w.a, _tag(w.a))}/members"))


@member_cross("DeleteSegment")
def _(w):
    seg = _segment(w.a, _tag(w.a))
    not_found(w.b.as_staff("DELETE", f"/v1/staff/segments/{seg}"))
    ok(w.a.as_staff("GET", f"/v1/staff/segments/{seg}"))


# ---- end of segments ----


def test_every_member_block_route_has_a_cross_merchant_case():
    text = (Path(__file__).parents[2] / "protos/siyu/member/v1/member.proto").read_text(encoding="utf-8")
    routes = set()
    for name in MEMBER_BLOCKS:
        block = text.split(f"// ---- {name} --", 1)[1].split(f"// ---- end of {name} ----", 1)[0]
        routes |= set(re.findall(r"rpc (\w+)\(", block))
    assert routes == set(MEMBER_CROSS)


@pytest.mark.parametrize("rpc", sorted(MEMBER_CROSS))
def test_merchant_b_cannot_reach_merchant_a_member_data(world, rpc):
    MEMBER_CROSS[rpc](world)


# ---- content funnels ----
# The funnel block of content.proto: every RPC in it has a case in each table below (the
# guard reads the block): merchant B on A's data, bad input, and roles that may not read.
FUNNEL_CROSS: dict[str, Callable[[World], None]] = {}
FUNNEL_BAD: dict[str, Callable[[Merchant], None]] = {}
FUNNEL_ROLES: dict[str, Callable[[Merchant, str], httpx.Response]] = {}


def _case(table: dict, rpc: str):
    def register(case):
        table[rpc] = case
        return case
    return register


def _funnel_report(m: Merchant, token: str | None = None, **params) -> httpx.Response:
    today = datetime.now(timezone.utc).date().isoformat()
    query = {"dimension": "FUNNEL_DIMENSION_PERSONA", "ref_id": m.shop.data["persona_id"], "from_day": today,
             "to_day": today, **params}
    if token:
        return m.shop.call("GET", "/v1/staff/funnel-report", channel=None, token=token, params=query)
    return m.as_staff("GET", "/v1/staff/funnel-report", params=query)


def _cohort_report(m: Merchant, token: str | None = None, **params) -> httpx.Response:
    month = datetime.now(timezone.utc).strftime("%Y-%m")
    query = {"from_month": month, "to_month": month, **params}
    if token:
        return m.shop.call("GET", "/v1/staff/repeat-purchase-report", channel=None, token=token, params=query)
    return m.as_staff("GET", "/v1/staff/repeat-purchase-report", params=query)


def _members_counted(m: Merchant) -> int:
    return sum(int(g["members"]) for g in ok(_cohort_report(m)).get("groups", []))


@_case(FUNNEL_CROSS, "GetFunnelReport")
def _(w):
    ok(_funnel_report(w.a))
    not_found(_funnel_report(w.b, ref_id=w.a.shop.data["persona_id"]))
    not_found(_funnel_report(w.b, dimension="FUNNEL_DIMENSION_CONTENT", ref_id=w.a.shop.data["content_id"]))


@_case(FUNNEL_CROSS, "GetRepeatPurchaseReport")
def _(w):
    from tests.support.shop import paid_order

    before_a, before_b = _members_counted(w.a), _members_counted(w.b)
    newcomer = w.a.shop.login(f"funnel-{new_key()[:10]}")["access_token"]  # a first purchase this month
    paid_order(w.a.shop, newcomer, w.a.sku)
    wait_until(lambda: _members_counted(w.a) == before_a + 1, message="A's paid order counted")
    assert _members_counted(w.b) == before_b


@_case(FUNNEL_BAD, "GetFunnelReport")
def _(m):
    refused(_funnel_report(m, dimension="FUNNEL_DIMENSION_UNSPECIFIED", ref_id="", from_day="2026-1-1",
                           to_day=""), "dimension", "ref_id", "from_day", "to_day")
    refused(_funnel_report(m, dimension="FUNNEL_DIMENSION_CHANNEL", ref_id="WECHAT", from_day="2026-06-02",
                           to_day="2026-06-01"), "ref_id", "to_day")


@_case(FUNNEL_BAD, "GetRepeatPurchaseReport")
def _(m):
    refused(_cohort_report(m, from_month="2026", to_month="20-01"), "from_month", "to_month")
    refused(_cohort_report(m, from_month="2026-13", to_month="2026-12"), "from_month")
    refused(_cohort_report(m, from_month="2020-01", to_month="2026-01"), "to_month")


@_case(FUNNEL_ROLES, "GetFunnelReport")
def _(m, token):
    return _funnel_report(m, token)


@_case(FUNNEL_ROLES, "GetRepeatPurchaseReport")
def _(m, token):
    return _cohort_report(m, token)


def funnel_block_routes() -> set[str]:
    text = (Path(__file__).parents[2] / "protos/siyu/content/v1/content.proto").read_text(encoding="utf-8")
    block = text.split("// ---- Funnels, repeat purchase and lifetime value ----", 1)[1].split(
        "// ---- end of funnels ----", 1)[0]
    return set(re.findall(r"rpc (\w+)\(", block))


def test_every_funnel_route_has_a_case_in_every_table():
    assert funnel_block_routes() == set(FUNNEL_CROSS) == set(FUNNEL_BAD) == set(FUNNEL_ROLES)


@pytest.mark.parametrize("rpc", sorted(FUNNEL_CROSS))
def test_merchant_b_cannot_read_merchant_a_funnels(world, rpc):
    FUNNEL_CROSS[rpc](world)


@pytest.mark.parametrize("rpc", sorted(FUNNEL_BAD))
def test_funnel_bad_input_is_refused_with_field_violations(world, rpc):
    FUNNEL_BAD[rpc](world.a)


@pytest.fixture(scope="module")
def guide_and_finance(world) -> tuple[str, str]:
    from tests.support.shop import staff_with

    return staff_with(world.a.shop, "GUIDE"), staff_with(world.a.shop, "FINANCE")


@pytest.mark.parametrize("rpc", sorted(FUNNEL_ROLES))
def test_funnel_reports_are_denied_to_guides_and_finance(world, guide_and_finance, rpc):
    for token in guide_and_finance:
        resp = FUNNEL_ROLES[rpc](world.a, token)
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"]["code"] == "PERMISSION_DENIED"
# ---- end of content funnels ----


# ---- content: Engagement and share codes ----
# The content service's engagement routes get three proofs in tables of their own: merchant
# B on merchant A's ids, bad input, and the wrong caller. The guards read the RPCs of the
# proto's "Engagement and share codes" block.

ENGAGEMENT_CROSS: dict[str, Callable[[World], None]] = {}
ENGAGEMENT_BAD: dict[str, Callable[[Merchant], None]] = {}
ENGAGEMENT_DENIED: dict[str, Callable[[Merchant], httpx.Response]] = {}


def engagement_routes() -> set[str]:
    text = (Path(__file__).parents[2] / "protos/siyu/content/v1/content.proto").read_text(encoding="utf-8")
    block = text.split("// ---- Engagement and share codes ----", 1)[1].split(
        "// ---- end of Engagement and share codes ----", 1)[0]
    return set(re.findall(r"rpc (\w+)\(", block))


class Engaged:
    """What merchant A's engagement cases act on, made once per world: a held comment (A's
    words differ from B's defaults), a published one, a share code."""

    def __init__(self, m: Merchant):
        self.m = m
        shop = m.shop
        self.content, self.persona = shop.data["content_id"], shop.data["persona_id"]
        settings = ok(m.as_staff("GET", "/v1/staff/engagement-settings"))
        if settings["version"] == "0":
            ok(m.as_staff("PUT", "/v1/staff/engagement-settings", json={
                "settings": {"sensitive_words": ["刷单"], "report_hide_threshold": 5, "attribution_window_days": 3},
                "expected_version": "0"}))
        self.held = ok(m.as_member("POST", f"/v1/contents/{self.content}/comments", json={
            "text": "刷单返现", "idempotency_key": new_key()}))["comment"]["comment_id"]
        self.published = ok(m.as_member("POST", f"/v1/contents/{self.content}/comments", json={
            "text": "好用", "idempotency_key": new_key()}))["comment"]["comment_id"]
        self.code = ok(m.as_member("POST", "/v1/share-codes", json={
            "target_kind": "SHARE_TARGET_KIND_CONTENT", "target_id": self.content}))["share_code"]["code"]

    def content_now(self) -> dict:
        return ok(self.m.as_channel("GET", f"/v1/contents/{self.content}"))["content"]

    def comments_now(self) -> list:
        return ok(self.m.as_staff("GET", "/v1/staff/comments", params={"status": "COMMENT_STATUS_HELD"})).get(
            "comments", [])

    def funnel_now(self) -> dict:
        return ok(self.m.as_staff("GET", f"/v1/staff/contents/{self.content}/funnel"))["funnel"]


def engaged(m: Merchant) -> Engaged:
    if "_engaged" not in m.__dict__:
        m.__dict__["_engaged"] = Engaged(m)
    return m.__dict__["_engaged"]


@_case(ENGAGEMENT_CROSS, "RecordContentView")
def _(w):
    e = engaged(w.a)
    not_found(unchanged(e.content_now, lambda: w.b.as_member("POST", f"/v1/contents/{e.content}:view", json={})))


@_case(ENGAGEMENT_CROSS, "SetContentLike")
def _(w):
    e = engaged(w.a)
    not_found(unchanged(e.content_now, lambda: w.b.as_member("POST", f"/v1/contents/{e.content}:like",
                                                             json={"liked": True})))


@_case(ENGAGEMENT_CROSS, "PostComment")
def _(w):
    e = engaged(w.a)
    not_found(unchanged(e.comments_now, lambda: w.b.as_member("POST", f"/v1/contents/{e.content}/comments", json={
        "text": "刷单", "idempotency_key": new_key()})))


@_case(ENGAGEMENT_CROSS, "ListComments")
def _(w):
    not_found(w.b.as_channel("GET", f"/v1/contents/{engaged(w.a).content}/comments"))


@_case(ENGAGEMENT_CROSS, "ReportComment")
def _(w):
    e = engaged(w.a)
    not_found(w.b.as_member("POST", f"/v1/comments/{e.published}:report", json={"reason": "x"}))


@_case(ENGAGEMENT_CROSS, "CreateShareCode")
def _(w):
    e = engaged(w.a)
    not_found(unchanged(e.content_now, lambda: w.b.as_member("POST", "/v1/share-codes", json={
        "target_kind": "SHARE_TARGET_KIND_CONTENT", "target_id": e.content})))


@_case(ENGAGEMENT_CROSS, "CreateStaffShareCode")
def _(w):
    e = engaged(w.a)
    not_found(w.b.as_staff("POST", "/v1/staff/share-codes", json={
        "target_kind": "SHARE_TARGET_KIND_PERSONA", "target_id": e.persona}))


@_case(ENGAGEMENT_CROSS, "OpenShareCode")
def _(w):
    not_found(w.b.as_channel("POST", f"/v1/share-codes/{engaged(w.a).code}:open", json={}))


@_case(ENGAGEMENT_CROSS, "ReportProductEvents")
def _(w):
    # B's member naming A's content counts into B's funnels only, never A's.
    e = engaged(w.a)
    unchanged(e.funnel_now, lambda: ok(w.b.as_member("POST", "/v1/product-events:batch", json={"events": [{
        "client_event_id": new_key(), "kind": "PRODUCT_EVENT_KIND_CLICK", "product_id": w.a.product_id,
        "content_id": e.content}]})))


@_case(ENGAGEMENT_CROSS, "GetEngagementSettings")
def _(w):
    engaged(w.a)
    assert ok(w.b.as_staff("GET", "/v1/staff/engagement-settings"))["settings"].get("sensitive_words", []) == []


@_case(ENGAGEMENT_CROSS, "UpdateEngagementSettings")
def _(w):
    engaged(w.a)
    mine = lambda: ok(w.a.as_staff("GET", "/v1/staff/engagement-settings"))  # noqa: E731
    theirs = ok(w.b.as_staff("GET", "/v1/staff/engagement-settings"))
    unchanged(mine, lambda: ok(w.b.as_staff("PUT", "/v1/staff/engagement-settings", json={
        "settings": {"sensitive_words": ["B"], "report_hide_threshold": 2, "attribution_window_days": 9},
        "expected_version": theirs["version"]})))


@_case(ENGAGEMENT_CROSS, "ListCommentsForReview")
def _(w):
    held = engaged(w.a).held
    assert held in {c["comment_id"] for c in engaged(w.a).comments_now()}
    theirs = ok(w.b.as_staff("GET", "/v1/staff/comments")).get("comments", [])
    assert held not in {c["comment_id"] for c in theirs}


@_case(ENGAGEMENT_CROSS, "ModerateComment")
def _(w):
    e = engaged(w.a)
    not_found(unchanged(e.comments_now, lambda: w.b.as_staff("POST", f"/v1/staff/comments/{e.held}:moderate", json={
        "action": "MODERATION_ACTION_APPROVE", "reason": "not mine"})))


@_case(ENGAGEMENT_BAD, "RecordContentView")
def _(m):
    refused(m.as_member("POST", f"/v1/contents/{BAD_ID}:view", json={}), "content_id")


@_case(ENGAGEMENT_BAD, "SetContentLike")
def _(m):
    refused(m.as_member("POST", f"/v1/contents/{BAD_ID}:like", json={"liked": True}), "content_id")


@_case(ENGAGEMENT_BAD, "PostComment")
def _(m):
    e = engaged(m)
    refused(unchanged(e.comments_now, lambda: m.as_member("POST", f"/v1/contents/{e.content}/comments", json={
        "text": "   ", "idempotency_key": ""})), "text", "idempotency_key")


@_case(ENGAGEMENT_BAD, "ListComments")
def _(m):
    refused(m.as_channel("GET", f"/v1/contents/{engaged(m).content}/comments",
                         params={"page_size": 101, "page_token": "garbage"}), "page_size")


@_case(ENGAGEMENT_BAD, "ReportComment")
def _(m):
    refused(m.as_member("POST", f"/v1/comments/{BAD_ID}:report", json={"reason": "x" * 201}), "comment_id", "reason")


@_case(ENGAGEMENT_BAD, "CreateShareCode")
def _(m):
    refused(m.as_member("POST", "/v1/share-codes", json={"target_id": BAD_ID}), "target_kind", "target_id")


@_case(ENGAGEMENT_BAD, "CreateStaffShareCode")
def _(m):
    refused(m.as_staff("POST", "/v1/staff/share-codes", json={
        "target_kind": "SHARE_TARGET_KIND_PRODUCT", "target_id": BAD_ID, "persona_id": BAD_ID}),
        "target_id", "persona_id")


@_case(ENGAGEMENT_BAD, "OpenShareCode")
def _(m):
    refused(m.as_channel("POST", "/v1/share-codes/not-a-code:open", json={}), "code")


@_case(ENGAGEMENT_BAD, "ReportProductEvents")
def _(m):
    e = engaged(m)
    refused(unchanged(e.funnel_now, lambda: m.as_member("POST", "/v1/product-events:batch", json={"events": [
        {"client_event_id": f"evt-{i:05d}", "kind": "PRODUCT_EVENT_KIND_CLICK", "product_id": m.product_id,
         "content_id": e.content} for i in range(51)]})), "events")


@_case(ENGAGEMENT_BAD, "GetEngagementSettings")
def _(m):
    # No fields to get wrong: a member's token is refused.
    assert m.as_member("GET", "/v1/staff/engagement-settings").status_code in (401, 403)


@_case(ENGAGEMENT_BAD, "UpdateEngagementSettings")
def _(m):
    now = lambda: ok(m.as_staff("GET", "/v1/staff/engagement-settings"))  # noqa: E731
    refused(unchanged(now, lambda: m.as_staff("PUT", "/v1/staff/engagement-settings", json={
        "settings": {"sensitive_words": ["x" * 33], "report_hide_threshold": 0, "attribution_window_days": 91},
        "expected_version": "-1"})), "settings.sensitive_words[0]", "settings.report_hide_threshold",
        "settings.attribution_window_days", "expected_version")


@_case(ENGAGEMENT_BAD, "ListCommentsForReview")
def _(m):
    refused(m.as_staff("GET", "/v1/staff/comments", params={"page_size": 500}), "page_size")


@_case(ENGAGEMENT_BAD, "ModerateComment")
def _(m):
    e = engaged(m)
    refused(unchanged(e.comments_now, lambda: m.as_staff("POST", f"/v1/staff/comments/{e.held}:moderate", json={
        "reason": " "})), "action", "reason")


# The wrong caller: member routes without a member, channel routes without a key, staff
# routes with a role they do not allow (a guide on operator work, finance on sharing).

def _guide(m: Merchant) -> str:
    if "_guide" not in m.__dict__:
        from tests.support.shop import staff_with
        m.__dict__["_guide"] = staff_with(m.shop, "GUIDE")
        m.__dict__["_finance"] = staff_with(m.shop, "FINANCE")
    return m.__dict__["_guide"]


def _as(m: Merchant, role: str, method: str, path: str, **kwargs) -> httpx.Response:
    _guide(m)
    return m.shop.call(method, path, channel=None, token=m.__dict__[f"_{role}"], **kwargs)


for _rpc, _case in {
    "RecordContentView": lambda m: m.as_channel("POST", f"/v1/contents/{engaged(m).content}:view", json={}),
    "SetContentLike": lambda m: m.as_channel("POST", f"/v1/contents/{engaged(m).content}:like", json={"liked": True}),
    "PostComment": lambda m: m.as_channel("POST", f"/v1/contents/{engaged(m).content}/comments", json={
        "text": "hi", "idempotency_key": new_key()}),
    "ListComments": lambda m: m.shop.call("GET", f"/v1/contents/{engaged(m).content}/comments", channel=None),
    "ReportComment": lambda m: m.as_channel("POST", f"/v1/comments/{engaged(m).published}:report", json={}),
    "CreateShareCode": lambda m: m.as_channel("POST", "/v1/share-codes", json={
        "target_kind": "SHARE_TARGET_KIND_CONTENT", "target_id": engaged(m).content}),
    "CreateStaffShareCode": lambda m: _as(m, "finance", "POST", "/v1/staff/share-codes", json={
        "target_kind": "SHARE_TARGET_KIND_CONTENT", "target_id": engaged(m).content}),
    "OpenShareCode": lambda m: m.shop.call("POST", f"/v1/share-codes/{engaged(m).code}:open", channel=None, json={}),
    "ReportProductEvents": lambda m: m.as_staff("POST", "/v1/product-events:batch", json={"events": []}),
    "GetEngagementSettings": lambda m: _as(m, "guide", "GET", "/v1/staff/engagement-settings"),
    "UpdateEngagementSettings": lambda m: _as(m, "guide", "PUT", "/v1/staff/engagement-settings", json={
        "settings": {"report_hide_threshold": 1, "attribution_window_days": 1}, "expected_version": "0"}),
    "ListCommentsForReview": lambda m: _as(m, "guide", "GET", "/v1/staff/comments"),
    "ModerateComment": lambda m: _as(m, "guide", "POST", f"/v1/staff/comments/{engaged(m).held}:moderate", json={
        "action": "MODERATION_ACTION_APPROVE", "reason": "guides may not"}),
}.items():
    ENGAGEMENT_DENIED[_rpc] = _case


def test_every_engagement_route_has_all_three_cases():
    routes = engagement_routes()
    assert routes == set(ENGAGEMENT_CROSS) == set(ENGAGEMENT_BAD) == set(ENGAGEMENT_DENIED)


@pytest.mark.parametrize("rpc", sorted(ENGAGEMENT_CROSS))
def test_merchant_b_cannot_reach_merchant_a_engagement(world, rpc):
    ENGAGEMENT_CROSS[rpc](world)


@pytest.mark.parametrize("rpc", sorted(ENGAGEMENT_BAD))
def test_engagement_bad_input_is_refused_and_changes_nothing(world, rpc):
    ENGAGEMENT_BAD[rpc](world.a)


@pytest.mark.parametrize("rpc", sorted(ENGAGEMENT_DENIED))
def test_engagement_wrong_caller_is_refused(world, rpc):
    # Refused by the access rule before any use case runs: nothing can be written.
    resp = ENGAGEMENT_DENIED[rpc](world.a)
    assert resp.status_code in (401, 403), resp.text
# ---- end of content: Engagement and share codes ----


# ---- content: Recommendations ----
# The recommendation block of content.proto: merchant B on A's data and bad input, each
# RPC of the block in both tables (the guard reads the block). A product B does not have
# shows B no content (a list, not a look-up).
RECS_CROSS: dict[str, Callable[[World], None]] = {}
RECS_BAD: dict[str, Callable[[Merchant], None]] = {}


def _recs_case(table: dict, rpc: str):
    def register(case):
        table[rpc] = case
        return case
    return register


def recs_routes() -> set[str]:
    text = (Path(__file__).parents[2] / "protos/siyu/content/v1/content.proto").read_text(encoding="utf-8")
    block = text.split("// ---- Recommendations ----", 1)[1].split("// ---- end of Recommendations ----", 1)[0]
    return set(re.findall(r"rpc (\w+)\(", block))


def _recommended(m: Merchant) -> set[str]:
    page = ok(m.as_member("GET", "/v1/me/recommendations", params={"page_size": 50}))
    return {r["product"]["product_id"] for r in page.get("recommendations", [])}


@_recs_case(RECS_CROSS, "ListMyRecommendations")
def _(w):
    w.a.paid_order  # noqa: B018 - A's product becomes one of A's best sellers
    wait_until(lambda: w.a.product_id in _recommended(w.a), message="A's sale counted")
    assert w.a.product_id not in _recommended(w.b)


@_recs_case(RECS_CROSS, "ListProductContents")
def _(w):
    lotion = w.a.shop.product("baby-lotion")
    seen = ok(w.a.as_channel("GET", f"/v1/products/{lotion}/contents"))
    assert [c["content_id"] for c in seen["contents"]] == [w.a.shop.data["content_id"]]
    assert ok(w.b.as_channel("GET", f"/v1/products/{lotion}/contents")).get("contents", []) == []


@_recs_case(RECS_BAD, "ListMyRecommendations")
def _(m):
    refused(m.as_member("GET", "/v1/me/recommendations", params={"page_size": 51}), "page_size")


@_recs_case(RECS_BAD, "ListProductContents")
def _(m):
    refused(m.as_channel("GET", f"/v1/products/{BAD_ID}/contents"), "product_id")
    refused(m.as_channel("GET", f"/v1/products/{m.product_id}/contents", params={"page_size": 21}), "page_size")
    refused(m.as_channel("GET", f"/v1/products/{m.product_id}/contents", params={"page_token": "junk"}),
            "page_token")


def test_every_recommendation_route_has_both_cases():
    assert recs_routes() == set(RECS_CROSS) == set(RECS_BAD)


@pytest.mark.parametrize("rpc", sorted(RECS_CROSS))
def test_merchant_b_cannot_reach_merchant_a_recommendations(world, rpc):
    RECS_CROSS[rpc](world)


@pytest.mark.parametrize("rpc", sorted(RECS_BAD))
def test_recommendation_bad_input_is_refused_with_field_violations(world, rpc):
    RECS_BAD[rpc](world.a)
# ---- end of content: Recommendations ----


# ---- content: Live sessions ----
# The live-session routes get the same three proofs: merchant B on merchant A's session,
# bad input, and the wrong caller (finance staff on staff routes, no key or no member on
# channel and member routes). The guard reads the annotated RPCs of the proto's "Live
# sessions" block (ReportLiveViewers is internal: no route).

LIVE_CROSS: dict[str, Callable[[World], None]] = {}
LIVE_BAD: dict[str, Callable[[Merchant], None]] = {}
LIVE_DENIED: dict[str, Callable[[Merchant], httpx.Response]] = {}


def live_routes() -> set[str]:
    text = (Path(__file__).parents[2] / "protos/siyu/content/v1/content.proto").read_text(encoding="utf-8")
    block = text.split("// ---- Live sessions ----", 1)[1].split("// ---- end of Live sessions ----", 1)[0]
    return {name for name, body in re.findall(r"rpc (\w+)\(.*?\{(.*?)\n  \}", block, re.S)
            if "google.api.http" in body}


class Lived:
    """Merchant A's LIVE session of its seeded persona, with its product in the line-up."""

    def __init__(self, m: Merchant):
        self.m = m
        self.persona = m.shop.data["persona_id"]
        self.session = ok(m.as_staff("POST", "/v1/staff/live-sessions", json=self.body(
            line_up=[{"sku_id": m.sku, "live_price": {"amount": "4000", "currency": "CNY"}}])))["live_session"]
        self.id = self.session["live_session_id"]
        ok(m.as_staff("POST", f"/v1/staff/live-sessions/{self.id}:change-state",
                      json={"state": "LIVE_SESSION_STATE_LIVE"}))

    def body(self, **more) -> dict:
        return {"persona_id": self.persona, "title": "直播", "idempotency_key": new_key(),
                "scheduled_at": rfc3339(datetime.now(timezone.utc) + timedelta(hours=1)), **more}

    def now(self) -> dict:
        return ok(self.m.as_staff("GET", "/v1/staff/live-sessions"))


def _live(table: dict, rpc: str):
    # Its own name: the engagement block's loop above rebinds `_case`.
    def register(case):
        table[rpc] = case
        return case
    return register


def lived(m: Merchant) -> Lived:
    if "_lived" not in m.__dict__:
        m.__dict__["_lived"] = Lived(m)
    return m.__dict__["_lived"]


@_live(LIVE_CROSS, "CreateLiveSession")
def _(w):
    a = lived(w.a)
    not_found(unchanged(a.now, lambda: w.b.as_staff("POST", "/v1/staff/live-sessions", json=a.body())))


@_live(LIVE_CROSS, "UpdateLiveSession")
def _(w):
    a = lived(w.a)
    not_found(unchanged(a.now, lambda: w.b.as_staff("PATCH", f"/v1/staff/live-sessions/{a.id}", json={
        "expected_version": "2", "title": "B's", "scheduled_at": a.session["scheduled_at"]})))


@_live(LIVE_CROSS, "ChangeLiveSessionState")
def _(w):
    a = lived(w.a)
    not_found(unchanged(a.now, lambda: w.b.as_staff("POST", f"/v1/staff/live-sessions/{a.id}:change-state",
                                                    json={"state": "LIVE_SESSION_STATE_ENDED"})))


@_live(LIVE_CROSS, "PinLiveProduct")
def _(w):
    a = lived(w.a)
    not_found(unchanged(a.now, lambda: w.b.as_staff("POST", f"/v1/staff/live-sessions/{a.id}:pin",
                                                    json={"sku_id": w.a.sku})))


@_live(LIVE_CROSS, "ListLiveSessions")
def _(w):
    a = lived(w.a)
    assert a.id not in {s["live_session_id"] for s in ok(w.b.as_staff("GET", "/v1/staff/live-sessions")).get(
        "live_sessions", [])}


@_live(LIVE_CROSS, "GetLiveRoom")
def _(w):
    not_found(w.b.as_channel("GET", f"/v1/live-sessions/{lived(w.a).id}"))


@_live(LIVE_CROSS, "LikeLiveSession")
def _(w):
    a = lived(w.a)
    not_found(unchanged(a.now, lambda: w.b.as_member("POST", f"/v1/me/live-sessions/{a.id}:like", json={
        "taps": 1, "idempotency_key": new_key()})))


@_live(LIVE_CROSS, "ListProductLiveSessions")
def _(w):
    a = lived(w.a)
    assert [s["live_session"]["live_session_id"] for s in ok(w.a.as_channel(
        "GET", f"/v1/products/{w.a.product_id}/live-sessions"))["sessions"]] == [a.id]
    assert ok(w.b.as_channel("GET", f"/v1/products/{w.a.product_id}/live-sessions")).get("sessions", []) == []


@_live(LIVE_BAD, "CreateLiveSession")
def _(m):
    a = lived(m)
    refused(unchanged(a.now, lambda: m.as_staff("POST", "/v1/staff/live-sessions", json={
        "persona_id": BAD_ID, "title": "", "idempotency_key": "", "price_grace_minutes": 1441,
        "line_up": [{"sku_id": BAD_ID, "live_price": {"amount": "1", "currency": "CNY"}}]})),
        "persona_id", "title", "idempotency_key", "scheduled_at", "price_grace_minutes", "line_up[0].sku_id")


@_live(LIVE_BAD, "UpdateLiveSession")
def _(m):
    a = lived(m)
    refused(unchanged(a.now, lambda: m.as_staff("PATCH", f"/v1/staff/live-sessions/{a.id}", json={
        "expected_version": "2", "title": ""})), "title", "scheduled_at")
    refused(m.as_staff("PATCH", f"/v1/staff/live-sessions/{BAD_ID}", json={"title": "t"}), "live_session_id")


@_live(LIVE_BAD, "ChangeLiveSessionState")
def _(m):
    a = lived(m)
    refused(unchanged(a.now, lambda: m.as_staff("POST", f"/v1/staff/live-sessions/{a.id}:change-state",
                                                json={})), "state")


@_live(LIVE_BAD, "PinLiveProduct")
def _(m):
    a = lived(m)
    refused(unchanged(a.now, lambda: m.as_staff("POST", f"/v1/staff/live-sessions/{a.id}:pin",
                                                json={"sku_id": BAD_ID})), "sku_id")


@_live(LIVE_BAD, "ListLiveSessions")
def _(m):
    refused(m.as_staff("GET", "/v1/staff/live-sessions", params={"page_size": 101, "persona_id": BAD_ID}),
            "page_size", "persona_id")


@_live(LIVE_BAD, "GetLiveRoom")
def _(m):
    refused(m.as_channel("GET", f"/v1/live-sessions/{BAD_ID}"), "live_session_id")


@_live(LIVE_BAD, "LikeLiveSession")
def _(m):
    a = lived(m)
    refused(unchanged(a.now, lambda: m.as_member("POST", f"/v1/me/live-sessions/{a.id}:like", json={
        "taps": 101, "idempotency_key": ""})), "taps", "idempotency_key")


@_live(LIVE_BAD, "ListProductLiveSessions")
def _(m):
    refused(m.as_channel("GET", f"/v1/products/{BAD_ID}/live-sessions"), "product_id")


for _live_rpc, _live_case in {
    "CreateLiveSession": lambda m: _as(m, "finance", "POST", "/v1/staff/live-sessions", json=lived(m).body()),
    "UpdateLiveSession": lambda m: _as(m, "finance", "PATCH", f"/v1/staff/live-sessions/{lived(m).id}", json={
        "expected_version": "2", "title": "t", "scheduled_at": lived(m).session["scheduled_at"]}),
    "ChangeLiveSessionState": lambda m: _as(m, "finance", "POST", f"/v1/staff/live-sessions/{lived(m).id}:change-state",
                                            json={"state": "LIVE_SESSION_STATE_ENDED"}),
    "PinLiveProduct": lambda m: _as(m, "finance", "POST", f"/v1/staff/live-sessions/{lived(m).id}:pin",
                                    json={"sku_id": m.sku}),
    "ListLiveSessions": lambda m: _as(m, "finance", "GET", "/v1/staff/live-sessions"),
    "GetLiveRoom": lambda m: m.shop.call("GET", f"/v1/live-sessions/{lived(m).id}", channel=None),
    "LikeLiveSession": lambda m: m.as_channel("POST", f"/v1/me/live-sessions/{lived(m).id}:like", json={
        "taps": 1, "idempotency_key": new_key()}),
    "ListProductLiveSessions": lambda m: m.shop.call("GET", f"/v1/products/{m.product_id}/live-sessions",
                                                     channel=None),
}.items():
    LIVE_DENIED[_live_rpc] = _live_case


def test_every_live_session_route_has_all_three_cases():
    assert live_routes() == set(LIVE_CROSS) == set(LIVE_BAD) == set(LIVE_DENIED)


@pytest.mark.parametrize("rpc", sorted(LIVE_CROSS))
def test_merchant_b_cannot_reach_merchant_a_live_sessions(world, rpc):
    LIVE_CROSS[rpc](world)


@pytest.mark.parametrize("rpc", sorted(LIVE_BAD))
def test_live_session_bad_input_is_refused_and_changes_nothing(world, rpc):
    LIVE_BAD[rpc](world.a)


@pytest.mark.parametrize("rpc", sorted(LIVE_DENIED))
def test_live_session_wrong_caller_is_refused(world, rpc):
    resp = LIVE_DENIED[rpc](world.a)
    assert resp.status_code in (401, 403), resp.text
# ---- end of content: Live sessions ----
