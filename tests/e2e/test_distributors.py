"""Distribution and exclusive guides over HTTP, as the mini-program and the staff console use
them: the settings refuse a third level; a member applies and an OPERATOR approves; a
member who opens a distributor's share code is bound (content's ShareCodeOpened,
published here on NATS as content will); ResolveReferral (the order service's internal
call at placement, called here over gRPC) binds through the order's sharer and answers two
levels with their rates and the guide with their store; a member whose paid spend reaches
the threshold becomes a distributor by itself; the guide sees their customers masked.
Every new route: bad input → 400 with field violations and nothing written, another
merchant → 404, a wrong role → 403."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import grpc
import nats
from siyu.content.v1 import events_pb2 as content_events
from siyu.member.v1 import member_pb2

from scripts.seed import Clients
from siyu_kit.context import RequestContext
from siyu_kit.events.outbox import make_event
from siyu_kit.protos import timestamp
from tests.support import assert_routes_named, block_routes, wait_until
from tests.support.shop import Shop, ok, paid_order, refused

THRESHOLD = 5_000
LEVEL_ID = "dlv_" + "0" * 26


def settings(shop: Shop) -> dict:
    return ok(shop.as_staff("GET", "/v1/staff/distribution/settings"))["settings"]


def turn_on(shop: Shop) -> dict:
    current = settings(shop)
    if current.get("enabled"):
        return current
    return ok(shop.as_staff("PUT", "/v1/staff/distribution/settings", json={"settings": {
        "enabled": True, "levels": 2, "level1_rate_bp": 1000, "level2_rate_bp": 500, "binding_days": 30,
        "auto_distributor_threshold": str(THRESHOLD), "guide_rate_bp": 200},
        "expected_version": current.get("version", "0")}))["settings"]


def member(shop: Shop, name: str) -> tuple[str, str]:
    """A new member: (token, member id)."""
    body = ok(shop.call("POST", "/v1/auth/login", json={"code": f"sandbox:dist-{uuid.uuid4().hex[:12]}",
                                                        "nickname": f"{name}小明"}))
    return body["access_token"], body["member"]["member_id"]


def distributor(shop: Shop, token: str, member_id: str) -> dict:
    """The member applies and the owner approves."""
    applied = ok(shop.call("POST", "/v1/me/distributor:apply", token=token, json={"reason": "朋友多"}))["distributor"]
    assert applied["state"] == "DISTRIBUTOR_STATE_PENDING"
    return ok(shop.as_staff("POST", f"/v1/staff/distributors/{member_id}:approve", json={}))["distributor"]


def mine(shop: Shop, token: str) -> dict:
    return ok(shop.call("GET", "/v1/me/distributor", token=token))


_CREW: dict[tuple[str, str], tuple[str, str]] = {}


def crew(shop: Shop, role: str) -> tuple[str, str]:
    """The shop's staff user of this role, made once for the module (logins cost a password hash)."""
    found = _CREW.get((shop.data["merchant_id"], role))
    if found is None:
        found = _CREW[(shop.data["merchant_id"], role)] = new_staff(shop, role)
    return found


def new_staff(shop: Shop, role: str) -> tuple[str, str]:
    """A staff user with one role: (staff id, token)."""
    username = f"{role.lower()}-{uuid.uuid4().hex[:8]}"
    user = ok(shop.as_staff("POST", "/v1/staff/users", json={"username": username, "password": "role-password-1",
                                                             "roles": [f"STAFF_ROLE_{role}"]}))["user"]
    token = ok(shop.call("POST", "/v1/staff/login", channel=None, json={
        "merchant_code": shop.data["merchant_code"], "username": username, "password": "role-password-1"}))[
        "access_token"]
    return user["staff_id"], token


def resolve(stack, shop: Shop, member_id: str, sharer_id: str = "") -> member_pb2.ResolveReferralResponse:
    """ResolveReferral as the order service calls it at placement."""
    md = RequestContext(merchant_id=shop.data["merchant_id"], calling_service="order").to_metadata()
    return Clients.from_env(stack.env()).member.ResolveReferral(
        member_pb2.ResolveReferralRequest(member_id=member_id, sharer_id=sharer_id), metadata=md, timeout=10)


def open_share_code(stack, shop: Shop, sharer_id: str, member_id: str) -> None:
    """content's ShareCodeOpened, as content will publish it."""
    async def publish() -> None:
        event = make_event("siyu.content.share_code.opened", merchant_id=shop.data["merchant_id"],
                           aggregate_id="shc_" + uuid.uuid4().hex[:8], aggregate_version=1,
                           payload=content_events.ShareCodeOpened(code="CODE1", sharer_id=sharer_id,
                                                                  member_id=member_id,
                                                                  at=timestamp(datetime.now(timezone.utc))))
        nc = await nats.connect(stack.nats_url)
        try:
            await nc.jetstream().publish(event.subject, event.data, headers={"Nats-Msg-Id": event.event_id})
        finally:
            await nc.close()

    asyncio.run(publish())


def test_a_third_level_is_refused_and_an_application_is_approved(shop):
    before = settings(shop)
    refused(shop.as_staff("PUT", "/v1/staff/distribution/settings", json={
        "settings": {"enabled": True, "levels": 3, "level1_rate_bp": 1000, "level2_rate_bp": 500,
                     "binding_days": 30}, "expected_version": before.get("version", "0")}),
        400, "INVALID_FIELDS", {"settings.levels"})
    assert settings(shop).get("version", "0") == before.get("version", "0")  # nothing written
    turn_on(shop)
    token, member_id = member(shop, "甲")
    refused(shop.call("GET", "/v1/me/distributor", token=token), 404, "DISTRIBUTOR_NOT_FOUND")
    ok(shop.call("POST", "/v1/me/distributor:apply", token=token, json={"reason": "朋友多"}))
    pending = ok(shop.as_staff("GET", "/v1/staff/distributor-applications"))["distributors"]
    assert member_id in [d["member_id"] for d in pending]
    approved = ok(shop.as_staff("POST", f"/v1/staff/distributors/{member_id}:approve", json={}))["distributor"]
    assert approved["state"] == "DISTRIBUTOR_STATE_ACTIVE" and approved["level1_rate_bp"] == 1000
    me = mine(shop, token)["distributor"]
    assert (me["state"], me["apply_reason"]) == ("DISTRIBUTOR_STATE_ACTIVE", "朋友多")
    _, finance = crew(shop, "FINANCE")
    seen = ok(shop.call("GET", f"/v1/staff/distributors/{member_id}", channel=None, token=finance))["distributor"]
    assert seen["state"] == "DISTRIBUTOR_STATE_ACTIVE"


def test_share_codes_and_orders_bind_and_the_order_is_credited_to_two_levels(shop, stack):
    turn_on(shop)
    a_token, a = member(shop, "甲")
    distributor(shop, a_token, a)
    b_token, b = member(shop, "乙")
    open_share_code(stack, shop, a, b)
    wait_until(lambda: int(mine(shop, a_token).get("bound_customers", "0")) == 1, message="B bound to A")
    made = distributor(shop, b_token, b)
    assert made["upline_id"] == a
    assert mine(shop, b_token)["upline_nickname_masked"] == "甲**"
    # A customer of B (bound through the order's sharer) credits B and A, never more.
    c_token, c = member(shop, "丙")
    referral = resolve(stack, shop, c, b).referral
    assert (referral.distributor_id, referral.distributor_rate_bp) == (b, 1000)
    assert (referral.upline_distributor_id, referral.upline_rate_bp) == (a, 500)
    assert resolve(stack, shop, a, c).referral.distributor_id == ""  # C is no distributor
    assert resolve(stack, shop, a, b).referral.distributor_id == ""  # B is below A: no cycle
    team = ok(shop.call("GET", "/v1/me/distributor/team", token=a_token,
                        params={"kind": "TEAM_MEMBER_KIND_DISTRIBUTOR"}))["members"]
    assert [m["nickname_masked"] for m in team] == ["乙**"]
    # The exclusive guide: bound by the store code, credited with their store.
    guide_id, guide_token = crew(shop, "GUIDE")
    ok(shop.as_staff("PUT", f"/v1/staff/guides/{guide_id}/store", json={"store": "南京西路店"}))
    bound = ok(shop.call("POST", "/v1/me/guide:bind", token=c_token, json={"guide_id": guide_id}))
    assert bound == {"guide_id": guide_id, "bound": True}
    other_guide, _ = new_staff(shop, "GUIDE")
    assert ok(shop.call("POST", "/v1/me/guide:bind", token=c_token, json={"guide_id": other_guide})) == {
        "guide_id": guide_id, "bound": False}  # the first guide keeps the customer
    referral = resolve(stack, shop, c).referral
    assert (referral.guide_id, referral.guide_rate_bp, referral.guide_store) == (guide_id, 200, "南京西路店")
    customers = ok(shop.call("GET", "/v1/staff/guide/customers", channel=None, token=guide_token))["customers"]
    assert [(x["member_id"], x["nickname_masked"]) for x in customers] == [(c, "丙**")]


def test_a_member_becomes_a_distributor_by_their_paid_spend(shop):
    turn_on(shop)
    token, member_id = member(shop, "丁")
    paid_order(shop, token, shop.new_sku(stock=5, price=THRESHOLD * 2))
    made = wait_until(lambda: (r := shop.call("GET", "/v1/me/distributor", token=token)).status_code == 200
                      and r.json()["distributor"], message="a distributor by spend")
    assert (made["state"], made.get("automatic")) == ("DISTRIBUTOR_STATE_ACTIVE", True)


def test_every_distribution_route_refuses_bad_input_other_merchants_and_wrong_roles(shop, other_shop, stack):
    turn_on(shop)
    turn_on(other_shop)
    token, member_id = member(shop, "戊")
    guide_id, guide_token = crew(shop, "GUIDE")
    _, finance = crew(shop, "FINANCE")
    _, operator = crew(shop, "OPERATOR")
    level = ok(shop.as_staff("POST", "/v1/staff/distribution/levels", json={
        "idempotency_key": uuid.uuid4().hex, "name": "金牌", "level1_rate_bp": 1200, "level2_rate_bp": 300}))["level"]
    ok(shop.call("POST", "/v1/me/distributor:apply", token=token, json={}))

    def staff(method: str, path: str, who: str = operator, **kw):
        return shop.call(method, path, channel=None, token=who, **kw)

    # Bad input: 400 with the field named, nothing written.
    bad = [
        (staff("PUT", "/v1/staff/distribution/settings", json={"settings": {"enabled": True, "levels": 2,
                                                                              "level1_rate_bp": 4000,
                                                                              "level2_rate_bp": 2000,
                                                                              "binding_days": 30}}),
         {"settings.level2_rate_bp"}),
        (staff("POST", "/v1/staff/distribution/levels", json={"idempotency_key": "k", "name": "",
                                                              "level1_rate_bp": 9000}), {"name", "level1_rate_bp"}),
        (staff("PATCH", f"/v1/staff/distribution/levels/{level['level_id']}", json={"name": "x", "level1_rate_bp": 1,
                                                                                     "expected_version": "0"}),
         {"expected_version"}),
        (shop.call("POST", "/v1/me/distributor:apply", token=token, json={"reason": "长" * 201}), {"reason"}),
        (shop.call("GET", "/v1/me/distributor/team", token=token), {"kind"}),
        (staff("GET", "/v1/staff/distributor-applications", params={"page_token": "nope"}), {"page_token"}),
        (staff("POST", "/v1/staff/distributors/mem_x:approve", json={}), {"member_id"}),
        (staff("POST", f"/v1/staff/distributors/{member_id}:reject", json={}), {"reason"}),
        (staff("POST", "/v1/staff/distributors/bad:setEnabled", json={"enabled": True}), {"member_id"}),
        (staff("POST", f"/v1/staff/distributors/{member_id}:setLevel", json={"level_id": "gold"}), {"level_id"}),
        (staff("GET", "/v1/staff/distributors/bad"), {"member_id"}),
        (staff("GET", "/v1/staff/distributors", params={"page_size": 1000}), {"page_size"}),
        (shop.call("POST", "/v1/me/guide:bind", token=token, json={"guide_id": "guide-1"}), {"guide_id"}),
        (staff("POST", f"/v1/staff/members/{member_id}/guide", json={}), {"guide_id"}),
        (staff("PUT", f"/v1/staff/guides/{guide_id}/store", json={"store": "店" * 65}), {"store"}),
        (staff("GET", "/v1/staff/guide/customers", guide_token, params={"page_token": "nope"}), {"page_token"}),
    ]
    for resp, fields in bad:
        refused(resp, 400, fields=fields)
    assert ok(staff("GET", f"/v1/staff/distributors/{member_id}"))["distributor"]["state"] == \
        "DISTRIBUTOR_STATE_PENDING"
    with_internal = RequestContext(merchant_id=shop.data["merchant_id"], calling_service="order").to_metadata()
    try:
        Clients.from_env(stack.env()).member.ResolveReferral(
            member_pb2.ResolveReferralRequest(member_id="mem_x", sharer_id="cus_1"), metadata=with_internal,
            timeout=10)
        raise AssertionError("bad input was accepted")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT

    # Another merchant's ids are not found.
    theirs = other_shop.as_staff
    _, their_member = member(other_shop, "己")
    for resp in (theirs("POST", f"/v1/staff/distributors/{member_id}:approve", json={}),
                 theirs("GET", f"/v1/staff/distributors/{member_id}"),
                 theirs("POST", f"/v1/staff/distributors/{member_id}:setEnabled", json={"enabled": False}),
                 theirs("PATCH", f"/v1/staff/distribution/levels/{level['level_id']}",
                        json={"name": "x", "level1_rate_bp": 1, "expected_version": level["version"]}),
                 theirs("POST", f"/v1/staff/distributors/{member_id}:reject", json={"reason": "no"}),
                 theirs("PUT", f"/v1/staff/guides/{guide_id}/store", json={"store": "x"}),
                 theirs("POST", f"/v1/staff/members/{their_member}/guide", json={"guide_id": guide_id}),
                 other_shop.call("POST", "/v1/me/guide:bind", token=member(other_shop, "庚")[0],
                                 json={"guide_id": guide_id})):
        refused(resp, 404)
    refused(staff("POST", f"/v1/staff/distributors/{member_id}:setLevel", json={"level_id": LEVEL_ID}), 404,
            "DISTRIBUTOR_LEVEL_NOT_FOUND")
    assert ok(theirs("GET", "/v1/staff/distributors")).get("distributors", []) == []
    assert ok(theirs("GET", "/v1/staff/distribution/levels")).get("levels", []) == []

    # Wrong roles are denied.
    for resp in (staff("GET", "/v1/staff/distribution/settings", guide_token),
                 staff("PUT", "/v1/staff/distribution/settings", finance, json={"settings": {"levels": 2}}),
                 staff("POST", "/v1/staff/distribution/levels", finance,
                       json={"idempotency_key": "k", "name": "x"}),
                 staff("PATCH", f"/v1/staff/distribution/levels/{level['level_id']}", guide_token,
                       json={"name": "x", "expected_version": "1"}),
                 staff("GET", "/v1/staff/distribution/levels", guide_token),
                 staff("GET", "/v1/staff/distributor-applications", finance),
                 staff("POST", f"/v1/staff/distributors/{member_id}:approve", finance, json={}),
                 staff("POST", f"/v1/staff/distributors/{member_id}:reject", guide_token, json={"reason": "x"}),
                 staff("POST", f"/v1/staff/distributors/{member_id}:setEnabled", finance, json={"enabled": True}),
                 staff("POST", f"/v1/staff/distributors/{member_id}:setLevel", finance, json={}),
                 staff("GET", f"/v1/staff/distributors/{member_id}", guide_token),
                 staff("GET", "/v1/staff/distributors", guide_token),
                 staff("POST", f"/v1/staff/members/{member_id}/guide", guide_token, json={"guide_id": guide_id}),
                 staff("PUT", f"/v1/staff/guides/{guide_id}/store", finance, json={"store": "x"}),
                 staff("GET", "/v1/staff/guide/customers", finance)):
        refused(resp, 403)
    # Member routes take no staff token.
    for method, path in (("POST", "/v1/me/distributor:apply"), ("GET", "/v1/me/distributor"),
                         ("GET", "/v1/me/distributor/team"), ("POST", "/v1/me/guide:bind")):
        assert shop.call(method, path, token=operator, json={} if method == "POST" else None).status_code in (401,
                                                                                                             403)


def test_every_distribution_rpc_has_its_cases_here():
    # ApplyForDistributor, ApproveDistributor, BindExclusiveGuide, CreateDistributorLevel,
    # GetDistributionSettings, GetDistributor, GetMyDistributor, ListDistributorApplications,
    # ListDistributorLevels, ListDistributors, ListMyGuideCustomers, ListMyTeam,
    # ReassignExclusiveGuide, RejectDistributor, SetDistributorEnabled, SetDistributorLevel,
    # SetGuideStore, UpdateDistributionSettings, UpdateDistributorLevel.
    routes = block_routes("siyu/member/v1/member.proto", "Distribution")
    assert len(routes) == 19
    assert_routes_named(__file__, routes)
