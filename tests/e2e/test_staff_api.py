"""The staff and platform API over HTTP: the platform opens a merchant and its owner logs
in; owners manage staff users and channel keys, operators the tiers, each change audited;
every new route is refused across merchants, for the wrong role, and with bad input
(400 with field violations, nothing written)."""
from __future__ import annotations

import time
import uuid

import httpx
import pytest

from gateway.routes import Table
from siyu_kit.config import DEV_PLATFORM_TOKEN
from siyu_kit.ids import new_id
from tests.support import wait_until
from tests.support.shop import Shop, ok, refused

ADMIN_RPCS = {"ListStaffUsers", "CreateStaffUser", "SetStaffUserDisabled", "RotateStaffPassword", "ListApiKeys",
              "CreateApiKey", "DisableApiKey", "RotateApiKey", "ListAuditEntries", "GetTierConfig",
              "UpdateTierConfig", "GetMyTier", "OnboardMerchant", "ListMembers"}
LEVELS = [{"tier": "TIER_REGULAR", "threshold": "0", "discount_bp": 10000, "points_multiplier_bp": 10000},
          {"tier": "TIER_SILVER", "threshold": "200", "discount_bp": 9800, "points_multiplier_bp": 11000},
          {"tier": "TIER_GOLD", "threshold": "800", "discount_bp": 9500, "points_multiplier_bp": 13000},
          {"tier": "TIER_BLACK_GOLD", "threshold": "3000", "discount_bp": 9000, "points_multiplier_bp": 20000}]
# No birthday coupon on any tier (the field is answered empty).
LEVELS = [{**level, "birthday_coupon_template_id": ""} for level in LEVELS]




def platform(stack, method: str, path: str, token: str = DEV_PLATFORM_TOKEN, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, stack.gateway_url + path, headers=headers, timeout=30, **kwargs)


def audit(shop: Shop) -> list[dict]:
    return ok(shop.as_staff("GET", "/v1/staff/audit-entries", params={"page_size": 100})).get("entries", [])


def login(shop: Shop, username: str, password: str, code: str | None = None) -> httpx.Response:
    return shop.call("POST", "/v1/staff/login", channel=None, json={
        "merchant_code": code or shop.data["merchant_code"], "username": username, "password": password})


def test_every_admin_route_is_covered_here():
    member_routes = {r.method_name for r in Table.from_protos(("member",)).routes}
    assert ADMIN_RPCS <= member_routes


def test_the_platform_opens_a_merchant_whose_owner_logs_in_and_whose_keys_work(stack):
    code = "shop-" + uuid.uuid4().hex[:10]
    body = {"code": code, "name": "Brand New Shop", "owner_username": "boss", "owner_password": "boss-password-1",
            "channels": ["CHANNEL_MINI_PROGRAM", "CHANNEL_H5"]}
    refused(platform(stack, "POST", "/v1/platform/merchants", token="", json=body), 401, "TOKEN_MISSING")
    refused(platform(stack, "POST", "/v1/platform/merchants", token="not-the-platform-token", json=body), 401,
            "TOKEN_INVALID")
    bad = {**body, "code": "Bad Code!", "owner_password": "short", "channels": ["CHANNEL_UNSPECIFIED"]}
    refused(platform(stack, "POST", "/v1/platform/merchants", json=bad), 400, fields={"code", "owner_password"})
    refused(platform(stack, "POST", "/v1/platform/merchants", json={**body, "time_zone": "Mars/Base"}), 400,
            fields={"time_zone"})
    # Nothing was written by the refusals: the code is still free.
    done = ok(platform(stack, "POST", "/v1/platform/merchants", json=body))
    assert done["merchant"]["code"] == code and done["owner_staff_id"].startswith("stf_")
    keys = {k["key"]["channel"]: k["api_key"] for k in done["api_keys"]}
    assert set(keys) == {"CHANNEL_MINI_PROGRAM", "CHANNEL_H5"}
    refused(platform(stack, "POST", "/v1/platform/merchants", json=body), 409, "MERCHANT_CODE_TAKEN")
    session = ok(httpx.post(stack.gateway_url + "/v1/staff/login", json={
        "merchant_code": code, "username": "boss", "password": "boss-password-1"}, timeout=30))
    assert session["roles"] == ["STAFF_ROLE_OWNER"]
    owner = {"Authorization": f"Bearer {session['access_token']}"}
    listed = ok(httpx.get(stack.gateway_url + "/v1/staff/api-keys", headers=owner, timeout=30))["keys"]
    assert {k["channel"] for k in listed} == set(keys)
    assert all(k["api_key"] not in str(listed) for k in done["api_keys"])
    products = httpx.get(stack.gateway_url + "/v1/products", headers={"X-Api-Key": keys["CHANNEL_H5"]}, timeout=30)
    assert products.status_code == 200, products.text
    entries = ok(httpx.get(stack.gateway_url + "/v1/staff/audit-entries", headers=owner, timeout=30))["entries"]
    assert {e["action"] for e in entries} == {"MERCHANT_ONBOARDED", "STAFF_USER_CREATED", "API_KEY_CREATED"}
    assert all(e["actor_kind"] == "platform" for e in entries)
    # A staff token is not the platform's credential.
    refused(platform(stack, "POST", "/v1/platform/merchants", token=session["access_token"],
                     json={**body, "code": code + "-2"}), 401, "TOKEN_INVALID")


def test_owner_manages_staff_users_and_a_disabled_users_tokens_stop(shop: Shop):
    created = ok(shop.as_staff("POST", "/v1/staff/users", json={
        "username": "guide-1", "password": "guide-password-1", "roles": ["STAFF_ROLE_OPERATOR"]}))["user"]
    refused(shop.as_staff("POST", "/v1/staff/users", json={
        "username": "guide-1", "password": "guide-password-1", "roles": ["STAFF_ROLE_GUIDE"]}), 409,
        "STAFF_USERNAME_TAKEN")
    guide = ok(login(shop, "guide-1", "guide-password-1"))["access_token"]
    as_guide = shop.call("GET", "/v1/staff/orders", channel=None, token=guide)
    assert as_guide.status_code == 200, as_guide.text
    refused(shop.call("GET", "/v1/staff/users", channel=None, token=guide), 403)
    refused(shop.call("POST", "/v1/staff/users", channel=None, token=guide,
                      json={"username": "x-2", "password": "password-123", "roles": ["STAFF_ROLE_OWNER"]}), 403)
    ok(shop.as_staff("POST", f"/v1/staff/users/{created['staff_id']}:setDisabled", json={"disabled": True}))
    wait_until(lambda: shop.call("GET", "/v1/staff/orders", channel=None, token=guide).status_code != 200,
               timeout=10, message="a disabled user's token stops working")
    refused(shop.call("GET", "/v1/staff/orders", channel=None, token=guide), 401, "TOKEN_REVOKED")
    refused(login(shop, "guide-1", "guide-password-1"), 401, "LOGIN_FAILED")
    ok(shop.as_staff("POST", f"/v1/staff/users/{created['staff_id']}:setDisabled", json={"disabled": False}))
    ok(shop.as_staff("POST", f"/v1/staff/users/{created['staff_id']}:rotatePassword",
                     json={"new_password": "guide-password-2"}))
    refused(login(shop, "guide-1", "guide-password-1"), 401, "LOGIN_FAILED")
    ok(login(shop, "guide-1", "guide-password-2"))
    users = ok(shop.as_staff("GET", "/v1/staff/users", params={"username_prefix": "guide"}))["users"]
    assert [u["username"] for u in users] == ["guide-1"] and "password" not in str(users)
    entries = [e for e in audit(shop) if e["target_id"] == created["staff_id"]]
    assert [e["action"] for e in entries] == ["STAFF_PASSWORD_ROTATED", "STAFF_USER_ENABLED", "STAFF_USER_DISABLED",
                                              "STAFF_USER_CREATED"]
    assert "guide-password" not in str(entries)
    refused(shop.as_staff("POST", f"/v1/staff/users/{shop_owner_id(shop)}:setDisabled", json={"disabled": True}),
            400, "STAFF_SELF_CHANGE")


def shop_owner_id(shop: Shop) -> str:
    return shop.data["staff_id"]


def test_owner_creates_rotates_and_disables_channel_keys(shop: Shop):
    created = ok(shop.as_staff("POST", "/v1/staff/api-keys", json={"channel": "CHANNEL_LIVE"}))
    old_key = created["api_key"]
    assert created["key"]["key_last4"] == old_key[-4:]
    rotated = ok(shop.as_staff("POST", f"/v1/staff/api-keys/{created['key']['key_id']}:rotate", json={}))
    assert rotated["replaced_key_id"] == created["key"]["key_id"]
    # The old key was never cached by the gateway: refused at once; the new one works.
    refused(httpx.get(shop.url + "/v1/products", headers={"X-Api-Key": old_key}, timeout=30), 401, "API_KEY_INVALID")
    assert httpx.get(shop.url + "/v1/products", headers={"X-Api-Key": rotated["api_key"]},
                     timeout=30).status_code == 200
    refused(shop.as_staff("POST", f"/v1/staff/api-keys/{created['key']['key_id']}:rotate", json={}), 400,
            "API_KEY_DISABLED")
    ok(shop.as_staff("POST", f"/v1/staff/api-keys/{rotated['key']['key_id']}:disable", json={}))
    live = ok(shop.as_staff("GET", "/v1/staff/api-keys", params={"channel": "CHANNEL_LIVE",
                                                                 "include_disabled": "true"}))["keys"]
    by_id = {k["key_id"]: k for k in live}
    assert by_id[created["key"]["key_id"]]["disabled"] and by_id[rotated["key"]["key_id"]]["disabled"]
    assert old_key not in str(live) and rotated["api_key"] not in str(live)
    actions = [e["action"] for e in audit(shop) if e["target_id"] in by_id]
    assert actions == ["API_KEY_DISABLED", "API_KEY_ROTATED", "API_KEY_CREATED"]
    assert old_key not in str(audit(shop))


def test_tiers_are_edited_on_their_version_and_members_see_their_standing(shop: Shop):
    config = ok(shop.as_staff("GET", "/v1/staff/tier-config"))["config"]
    updated = ok(shop.as_staff("PUT", "/v1/staff/tier-config", json={
        "levels": LEVELS, "expected_version": config["version"]}))["config"]
    assert updated["levels"] == LEVELS and int(updated["version"]) == int(config["version"]) + 1
    refused(shop.as_staff("PUT", "/v1/staff/tier-config", json={"levels": LEVELS,
                                                                "expected_version": config["version"]}),
            409, "VERSION_CONFLICT")
    member = shop.login("tier-" + uuid.uuid4().hex[:8])["access_token"]
    standing = ok(shop.call("GET", "/v1/me/tier", token=member))
    assert standing["tier"] == "TIER_REGULAR" and standing["next_tier"] == "TIER_SILVER"
    assert standing["growth_needed"] == "200" and standing["level"] == LEVELS[0]
    assert [e["action"] for e in audit(shop)][:1] == ["TIER_CONFIG_UPDATED"]


def guide_token(shop: Shop) -> str:
    username = "g-" + uuid.uuid4().hex[:8]
    ok(shop.as_staff("POST", "/v1/staff/users", json={"username": username, "password": "guide-password-1",
                                                      "roles": ["STAFF_ROLE_FINANCE"]}))
    return ok(login(shop, username, "guide-password-1"))["access_token"]


def test_wrong_roles_are_refused_on_every_staff_route(shop: Shop):
    token = guide_token(shop)
    calls = [("GET", "/v1/staff/users", None), ("POST", "/v1/staff/users", {}),
             ("POST", f"/v1/staff/users/{new_id('stf')}:setDisabled", {}),
             ("POST", f"/v1/staff/users/{new_id('stf')}:rotatePassword", {}), ("GET", "/v1/staff/api-keys", None),
             ("POST", "/v1/staff/api-keys", {}), ("POST", f"/v1/staff/api-keys/{new_id('key')}:disable", {}),
             ("POST", f"/v1/staff/api-keys/{new_id('key')}:rotate", {}), ("GET", "/v1/staff/audit-entries", None),
             ("GET", "/v1/staff/tier-config", None), ("PUT", "/v1/staff/tier-config", {}),
             ("GET", "/v1/staff/members", None)]
    before = audit(shop)
    for method, path, body in calls:
        refused(shop.call(method, path, channel=None, token=token, json=body), 403)
    # A member, or a channel key alone, reaches none of them; the platform route wants its token.
    member = shop.login("m-" + uuid.uuid4().hex[:8])["access_token"]
    for method, path, body in calls:
        assert shop.call(method, path, token=member, json=body).status_code == 401
    refused(shop.call("POST", "/v1/platform/merchants", channel=None, token=shop.staff_token(), json={}), 401)
    refused(shop.call("GET", "/v1/me/tier", channel=None, token=token), 401)
    assert audit(shop) == before


def test_merchant_b_reaches_none_of_merchant_as_staff_or_keys(shop: Shop, other_shop: Shop):
    guide = ok(shop.as_staff("POST", "/v1/staff/users", json={
        "username": "guide-x", "password": "guide-password-1", "roles": ["STAFF_ROLE_GUIDE"]}))["user"]
    key = ok(shop.as_staff("POST", "/v1/staff/api-keys", json={"channel": "CHANNEL_H5"}))
    before_a = audit(shop)
    refused(other_shop.as_staff("POST", f"/v1/staff/users/{guide['staff_id']}:setDisabled",
                                json={"disabled": True}), 404)
    refused(other_shop.as_staff("POST", f"/v1/staff/users/{guide['staff_id']}:rotatePassword",
                                json={"new_password": "stolen-password"}), 404)
    refused(other_shop.as_staff("POST", f"/v1/staff/api-keys/{key['key']['key_id']}:disable", json={}), 404)
    refused(other_shop.as_staff("POST", f"/v1/staff/api-keys/{key['key']['key_id']}:rotate", json={}), 404)
    assert guide["staff_id"] not in str(ok(other_shop.as_staff("GET", "/v1/staff/users")))
    assert key["key"]["key_id"] not in str(ok(other_shop.as_staff("GET", "/v1/staff/api-keys")))
    assert ok(other_shop.as_staff("GET", "/v1/staff/audit-entries",
                                  params={"target_id": guide["staff_id"]})).get("entries", []) == []
    # B's tier edit moves B's configuration only.
    a_config = ok(shop.as_staff("GET", "/v1/staff/tier-config"))["config"]
    b_config = ok(other_shop.as_staff("GET", "/v1/staff/tier-config"))["config"]
    ok(other_shop.as_staff("PUT", "/v1/staff/tier-config", json={"levels": LEVELS,
                                                                 "expected_version": b_config["version"]}))
    assert ok(shop.as_staff("GET", "/v1/staff/tier-config"))["config"] == a_config
    assert audit(shop) == before_a
    ok(login(shop, "guide-x", "guide-password-1"))
    assert httpx.get(shop.url + "/v1/products", headers={"X-Api-Key": key["api_key"]}, timeout=30).status_code == 200


@pytest.mark.parametrize("method,path,body,fields", [
    ("GET", "/v1/staff/users?page_size=101", None, {"page_size"}),
    ("GET", "/v1/staff/users?page_token=garbage", None, {"page_token"}),
    ("POST", "/v1/staff/users", {"username": "a b", "password": "short", "roles": []},
     {"username", "password", "roles"}),
    ("POST", "/v1/staff/users/not-an-id:setDisabled", {"disabled": True}, {"staff_id"}),
    ("POST", "/v1/staff/users/{stf}:rotatePassword", {"new_password": "short"}, {"new_password"}),
    ("GET", "/v1/staff/api-keys?page_size=-1", None, {"page_size"}),
    ("POST", "/v1/staff/api-keys", {}, {"channel"}),
    ("POST", "/v1/staff/api-keys/not-an-id:disable", {}, {"key_id"}),
    ("POST", "/v1/staff/api-keys/not-an-id:rotate", {}, {"key_id"}),
    ("GET", "/v1/staff/audit-entries?action=lower-case", None, {"action"}),
    ("GET", "/v1/staff/members?phone_suffix=12a4", None, {"phone_suffix"}),
    ("GET", "/v1/staff/members?registered_from=2026-01-02T00:00:00Z&registered_before=2026-01-01T00:00:00Z", None,
     {"registered_before"}),
    ("PUT", "/v1/staff/tier-config", {"levels": LEVELS[:2], "expected_version": "1"}, {"levels"}),
    ("PUT", "/v1/staff/tier-config", {"levels": [{**LEVELS[0], "discount_bp": 0}, *LEVELS[1:]]},
     {"levels[0].discount_bp", "expected_version"}),
])
def test_bad_input_is_refused_with_field_violations_and_writes_nothing(shop: Shop, method, path, body, fields):
    before, config = audit(shop), ok(shop.as_staff("GET", "/v1/staff/tier-config"))["config"]
    path = path.replace("{stf}", shop.data["staff_id"])
    refused(shop.as_staff(method, path, json=body), 400, fields=fields)
    assert audit(shop) == before
    assert ok(shop.as_staff("GET", "/v1/staff/tier-config"))["config"] == config


def test_lists_page_with_tokens_bound_to_their_filters(shop: Shop):
    for i in range(3):
        ok(shop.as_staff("POST", "/v1/staff/users", json={
            "username": f"page-{i}", "password": "guide-password-1", "roles": ["STAFF_ROLE_GUIDE"]}))
    first = ok(shop.as_staff("GET", "/v1/staff/users", params={"username_prefix": "page-", "page_size": 2}))
    second = ok(shop.as_staff("GET", "/v1/staff/users", params={"username_prefix": "page-", "page_size": 2,
                                                                "page_token": first["next_page_token"]}))
    assert [u["username"] for u in first["users"] + second["users"]] == ["page-2", "page-1", "page-0"]
    assert second["next_page_token"] == ""
    refused(shop.as_staff("GET", "/v1/staff/users", params={"username_prefix": "pag", "page_size": 2,
                                                            "page_token": first["next_page_token"]}), 400,
            fields={"page_token"})


def test_staff_find_members_by_nickname_tier_and_registration_and_a_paid_order_moves_the_tier(shop: Shop,
                                                                                               other_shop: Shop):
    config = ok(shop.as_staff("GET", "/v1/staff/tier-config"))["config"]
    ok(shop.as_staff("PUT", "/v1/staff/tier-config", json={"levels": LEVELS, "expected_version": config["version"]}))
    tag = uuid.uuid4().hex[:6]
    started = time.time()
    buyer = shop.call("POST", "/v1/auth/login", json={"code": f"sandbox:buyer-{tag}", "nickname": f"zed-{tag}"})
    browser = shop.call("POST", "/v1/auth/login", json={"code": f"sandbox:browse-{tag}", "nickname": f"zoe-{tag}"})
    buyer, browser = ok(buyer), ok(browser)
    token = buyer["access_token"]
    sku = shop.new_sku(stock=5, price=30000)
    order = ok(shop.call("POST", "/v1/orders", token=token, json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": "1"}]}))["order"]
    shop.pay(token, order["order_id"])
    wait_until(lambda: ok(shop.call("GET", "/v1/me/tier", token=token))["tier"] == "TIER_SILVER",
               timeout=20, message="the paid order's growth arrives")

    def names(**params) -> list[str]:
        return [m["nickname"] for m in ok(shop.as_staff("GET", "/v1/staff/members", params=params)).get("members", [])]

    assert set(names(nickname_prefix="z", page_size=100)) >= {f"zoe-{tag}", f"zed-{tag}"}
    assert f"zed-{tag}" in names(tier="TIER_SILVER", page_size=100)
    assert f"zed-{tag}" not in names(tier="TIER_REGULAR", page_size=100)
    assert f"zoe-{tag}" in names(tier="TIER_REGULAR", page_size=100)
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started - 5))
    assert set(names(registered_from=since, nickname_prefix="z")) >= {f"zoe-{tag}", f"zed-{tag}"}
    assert names(registered_before="2020-01-01T00:00:00Z") == []
    listed = ok(shop.as_staff("GET", "/v1/staff/members", params={"nickname_prefix": f"zed-{tag}"}))["members"]
    assert listed[0]["tier"] == "TIER_SILVER" and int(listed[0]["growth_value"]) >= 200
    guide = ok(shop.as_staff("POST", "/v1/staff/users", json={
        "username": f"g-{tag}", "password": "guide-password-1", "roles": ["STAFF_ROLE_GUIDE"]}))
    assert guide["user"]["roles"] == ["STAFF_ROLE_GUIDE"]
    as_guide = ok(login(shop, f"g-{tag}", "guide-password-1"))["access_token"]
    assert ok(shop.call("GET", "/v1/staff/members", channel=None, token=as_guide,
                        params={"nickname_prefix": f"zed-{tag}"}))["members"][0]["member_id"] == \
        buyer["member"]["member_id"]
    # Merchant B's staff never see A's members.
    assert ok(other_shop.as_staff("GET", "/v1/staff/members", params={"nickname_prefix": f"zed-{tag}"})).get(
        "members", []) == []



def test_staff_list_products_in_every_status_or_one_and_finance_may_not(shop: Shop):
    code = "d-" + uuid.uuid4().hex[:10]
    made = ok(shop.as_staff("POST", "/v1/staff/products", json={
        "code": code, "title": f"Draft {code}", "skus": [{"code": code + "-1", "list_price": {"amount": "100",
                                                                                                "currency": "CNY"},
                                                        "initial_stock": "1"}]}))["product"]
    assert made["status"] == "PRODUCT_STATUS_DRAFT"

    def ids(**params) -> set[str]:
        return {p["product_id"] for p in ok(shop.as_staff("GET", "/v1/staff/products",
                                                          params={"page_size": 100, **params})).get("products", [])}

    assert made["product_id"] in ids()
    assert made["product_id"] in ids(status="PRODUCT_STATUS_DRAFT")
    assert made["product_id"] not in ids(status="PRODUCT_STATUS_ON_SHELF")
    public = httpx.get(shop.url + "/v1/products", headers={"X-Api-Key": shop.key()}, params={"page_size": 100},
                       timeout=30).json().get("products", [])
    assert made["product_id"] not in {p["product_id"] for p in public}
    refused(shop.call("GET", "/v1/staff/products", channel=None, token=guide_token(shop)), 403)


def test_staff_list_personas_and_contents_of_their_merchant_only(shop: Shop, other_shop: Shop):
    persona, content = shop.data["persona_id"], shop.data["content_id"]
    personas = ok(shop.as_staff("GET", "/v1/staff/personas"))["personas"]
    assert persona in {p["persona_id"] for p in personas}
    mine = ok(shop.as_staff("GET", "/v1/staff/contents", params={"persona_id": persona,
                                                                 "status": "CONTENT_STATUS_PUBLISHED"}))["contents"]
    assert [c["content_id"] for c in mine] == [content]
    assert ok(shop.as_staff("GET", "/v1/staff/contents", params={"status": "CONTENT_STATUS_DRAFT"})).get(
        "contents", []) == []
    theirs = ok(other_shop.as_staff("GET", "/v1/staff/contents", params={"persona_id": persona}))
    assert theirs.get("contents", []) == []
    assert persona not in str(ok(other_shop.as_staff("GET", "/v1/staff/personas")))
    refused(shop.as_staff("GET", "/v1/staff/contents", params={"persona_id": "per_x"}), 400, fields={"persona_id"})
    refused(shop.as_staff("GET", "/v1/staff/personas", params={"page_token": "nope"}), 400, fields={"page_token"})
    refused(shop.call("GET", "/v1/staff/personas", channel=None, token=guide_token(shop)), 403)
