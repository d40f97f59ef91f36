"""Community group buy end to end over HTTP: two leaders' groups order from one campaign,
the campaign closes at its cut-off (by the job), the warehouse's pick list per leader,
each batch delivered to its pickup point, pickups by code (a wrong code refused), the
uncollected rule applied once, and the leader's commission in the member service; every
route of the block refuses bad input (400), other merchants (404) and the wrong role (403)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from tests.support import assert_routes_named, block_routes, wait_until
from tests.support.shop import Shop, ok, refused, staff_with

ROUTES = block_routes("siyu/order/v1/order.proto", "Community group buy")


def point(name: str = "幸福小区便利店") -> dict:
    return {"name": name, "region_code": "440305", "detail": "科技园路 1 号", "opening_hours": "9:00–21:00",
            "capacity_per_day": 200, "contact_phone": "13800138000"}


def cny(amount: int) -> dict:
    return {"amount": str(amount), "currency": "CNY"}


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def member(shop: Shop, tag: str) -> tuple[str, str]:
    login = shop.login(f"{tag}-{uuid.uuid4().hex[:8]}")
    return login["access_token"], login["member"]["member_id"]


def new_leader(shop: Shop, tag: str) -> tuple[str, str, dict]:
    """(token, member id, leader) of an approved leader."""
    token, member_id = member(shop, tag)
    leader = ok(shop.call("POST", "/v1/community/leaders", token=token,
                          json={"name": f"{tag} 团长", "pickup_point": point()}))["leader"]
    assert leader["state"] == "COMMUNITY_LEADER_STATE_PENDING"
    assert leader["pickup_point"]["contact_phone"] == "138****8000"
    approved = ok(shop.as_staff("POST", f"/v1/staff/community/leaders/{leader['leader_id']}:review",
                                json={"approve": True}))["leader"]
    return token, member_id, approved


def new_campaign(shop: Shop, lines: list[dict], cut_off_in: timedelta = timedelta(hours=2)) -> dict:
    return ok(shop.as_staff("POST", "/v1/staff/community/campaigns", json={
        "idempotency_key": uuid.uuid4().hex, "title": "周末鲜果", "lines": lines,
        "cut_off_at": iso(datetime.now(timezone.utc) + cut_off_in), "pickup_date": "2026-12-31",
        "leader_rate_bp": 1000}))["campaign"]


def place(shop: Shop, token: str, campaign_id: str, leader_id: str, lines: list[tuple[str, int]]):
    return shop.call("POST", "/v1/community/orders", token=token, json={
        "campaign_id": campaign_id, "leader_id": leader_id, "idempotency_key": uuid.uuid4().hex,
        "lines": [{"sku_id": s, "quantity": q} for s, q in lines]})


def staff_order(shop: Shop, order_id: str) -> dict:
    return ok(shop.as_staff("GET", f"/v1/staff/orders/{order_id}"))["order"]


def fen(m: dict | None) -> int:
    return int((m or {}).get("amount", 0))


def test_campaign_to_pickup_through_two_leaders_groups(shop: Shop):
    a, b = shop.new_sku(stock=50, price=1000), shop.new_sku(stock=50, price=3000)
    t1, m1, l1 = new_leader(shop, "lead1")
    t2, _, l2 = new_leader(shop, "lead2")
    (u1, _), (u2, _), (u3, _) = member(shop, "buy1"), member(shop, "buy2"), member(shop, "buy3")
    campaign = new_campaign(shop, [{"sku_id": a, "price": cny(800)}, {"sku_id": b, "price": cny(2500)}],
                            cut_off_in=timedelta(seconds=4))
    cid = campaign["campaign_id"]
    shown = ok(shop.call("GET", f"/v1/community/campaigns/{cid}", token=u1, params={"leader_id": l1["leader_id"]}))
    assert shown["campaign"]["leader"]["leader_id"] == l1["leader_id"]
    assert shown["campaign"]["state"] == "CAMPAIGN_STATE_OPEN"
    listed = ok(shop.call("GET", "/v1/community/campaigns", token=u1))["campaigns"]
    assert cid in [c["campaign_id"] for c in listed]

    o1 = ok(place(shop, u1, cid, l1["leader_id"], [(a, 2), (b, 1)]))["order"]
    o2 = ok(place(shop, u2, cid, l1["leader_id"], [(a, 1)]))["order"]
    o3 = ok(place(shop, u3, cid, l2["leader_id"], [(b, 2)]))["order"]
    assert fen(o1["payable"]) == 2 * 800 + 2500 and fen(o1.get("shipping_fee")) == 0
    assert o1["kind"] == "ORDER_KIND_COMMUNITY" and len(o1["activity"]["pickup_code"]) == 8

    # The cut-off: the job records the campaign closed; an order now is refused.
    wait_until(lambda: ok(shop.call("GET", f"/v1/community/campaigns/{cid}", token=u1))["campaign"]["state"]
               == "CAMPAIGN_STATE_CLOSED", timeout=20, message="the campaign closed at its cut-off")
    refused(place(shop, u1, cid, l1["leader_id"], [(a, 1)]), 400, "CAMPAIGN_CLOSED")
    for token, order in ((u1, o1), (u2, o2), (u3, o3)):
        shop.pay(token, order["order_id"])

    picks = ok(shop.as_staff("GET", f"/v1/staff/community/campaigns/{cid}/pick-list"))
    per_leader = {p["leader_id"]: {x["sku_id"]: int(x["units"]) for x in p["lines"]} for p in picks["leaders"]}
    assert per_leader == {l1["leader_id"]: {a: 3, b: 1}, l2["leader_id"]: {b: 2}}
    assert {x["sku_id"]: int(x["units"]) for x in picks["total"]} == {a: 3, b: 3}
    one = ok(shop.as_staff("GET", f"/v1/staff/community/campaigns/{cid}/pick-list",
                           params={"leader_id": l2["leader_id"]}))
    assert [p["leader_id"] for p in one["leaders"]] == [l2["leader_id"]]

    deliver1 = f"/v1/staff/community/campaigns/{cid}/batches/{l1['leader_id']}:deliver"
    assert ok(shop.as_staff("POST", deliver1, json={})).get("delivered") == 2
    assert not ok(shop.as_staff("POST", deliver1, json={})).get("delivered")  # a repeat delivers nothing
    assert staff_order(shop, o1["order_id"])["state"] == "ORDER_STATE_DELIVERED"

    # Pickup: a wrong code changes nothing; the leader scans one code, staff confirm the other.
    code1 = o1["activity"]["pickup_code"]
    wrong = "00000000" if code1 != "00000000" else "11111111"
    refused(shop.call("POST", "/v1/community/pickups", token=t1,
                      json={"campaign_id": cid, "pickup_code": wrong, "order_id": o1["order_id"]}),
            400, "PICKUP_CODE_MISMATCH")
    assert staff_order(shop, o1["order_id"])["state"] == "ORDER_STATE_DELIVERED"
    refused(shop.call("POST", "/v1/community/pickups", token=t2,
                      json={"campaign_id": cid, "pickup_code": code1, "order_id": o1["order_id"]}), 404)
    done = ok(shop.call("POST", "/v1/community/pickups", token=t1, json={"campaign_id": cid, "pickup_code": code1}))
    assert done == {"order_id": o1["order_id"], "state": "ORDER_STATE_COMPLETED"}
    ok(shop.as_staff("POST", "/v1/staff/community/pickups", json={
        "campaign_id": cid, "leader_id": l1["leader_id"], "pickup_code": o2["activity"]["pickup_code"]}))
    assert staff_order(shop, o2["order_id"])["state"] == "ORDER_STATE_COMPLETED"

    board = ok(shop.call("GET", f"/v1/community/dashboard/{cid}", token=t1))
    assert (board.get("picked_up"), board.get("waiting", 0), len(board["orders"])) == (2, 0, 2)
    assert fen(board["commission_confirmed"]) == (2 * 800 + 2500) // 10 + 800 // 10
    assert "pickup_code" not in str(board)

    # The leader's commission, recorded by the member service at its level.
    def recorded():
        records = ok(shop.call("GET", "/v1/me/commissions", token=t1))["records"]
        return [r for r in records if r["level"] == "COMMISSION_LEVEL_COMMUNITY_LEADER"] or None
    leader_records = wait_until(recorded, timeout=20, message="the leader's commission recorded")
    assert {r["order_id"] for r in leader_records} == {o1["order_id"], o2["order_id"]}

    # Uncollected: refunded at the next run after delivery, once.
    ok(shop.as_staff("PUT", "/v1/staff/community/settings", json={"settings": {
        "uncollected_days": 0, "uncollected_action": "UNCOLLECTED_ACTION_REFUND"}}))
    ok(shop.as_staff("POST", f"/v1/staff/community/campaigns/{cid}/batches/{l2['leader_id']}:deliver", json={}))
    refunded = wait_until(lambda: (o := staff_order(shop, o3["order_id"])) and
                          fen(o.get("refunded_amount")) == fen(o["payable"]) and o,
                          timeout=20, message="the uncollected order refunded")
    assert refunded["state"] == "ORDER_STATE_DELIVERED"
    refunds = ok(shop.as_staff("GET", "/v1/staff/refunds", params={"order_id": o3["order_id"]}))["refunds"]
    assert len(refunds) == 1 and refunds[0]["state"] == "REFUND_STATE_REFUNDED"


def test_every_route_refuses_bad_input_other_merchants_and_the_wrong_role(shop: Shop, other_shop: Shop):
    sku = shop.new_sku(stock=5, price=1000)
    _, _, their_leader = new_leader(other_shop, "their")
    their_sku = other_shop.new_sku(stock=5, price=1000)
    theirs = new_campaign(other_shop, [{"sku_id": their_sku, "price": cny(500)}])
    tc, tl = theirs["campaign_id"], their_leader["leader_id"]
    token, _ = member(shop, "m")
    lt, _, mine = new_leader(shop, "mine")  # the staff routes' 403 cases act on this leader
    ml = mine["leader_id"]
    cmp = new_campaign(shop, [{"sku_id": sku, "price": cny(800)}])["campaign_id"]
    code = "12345678"

    # Bad input: 400 naming the field, nothing written.
    member_bad = [
        ("POST", "/v1/community/leaders", {"json": {"name": "x", "pickup_point": {**point(), "contact_phone": "1"}}},
         "pickup_point.contact_phone"),
        ("GET", "/v1/community/campaigns", {"params": {"leader_id": "cld_x"}}, "leader_id"),
        ("GET", "/v1/community/campaigns/cmp_x", {}, "campaign_id"),
        ("POST", "/v1/community/orders", {"json": {"campaign_id": cmp, "leader_id": ml, "idempotency_key": "k",
                                                   "lines": [{"sku_id": sku, "quantity": 0}]}}, "lines[0].quantity"),
        ("POST", "/v1/community/pickups", {"json": {"campaign_id": cmp, "pickup_code": "12"}}, "pickup_code"),
        ("GET", "/v1/community/dashboard/cmp_x", {}, "campaign_id"),
    ]
    for method, path, kw, field in member_bad:
        refused(shop.call(method, path, token=token, **kw), 400, fields={field})
    staff_bad = [
        ("POST", "/v1/staff/community/leaders/cld_x:review", {"json": {"approve": True}}, "leader_id"),
        ("POST", "/v1/staff/community/leaders/cld_x:setEnabled", {"json": {}}, "leader_id"),
        ("GET", "/v1/staff/community/leaders/cld_x", {}, "leader_id"),
        ("GET", "/v1/staff/community/leaders", {"params": {"page_size": 500}}, "page_size"),
        ("POST", "/v1/staff/community/campaigns", {"json": {"idempotency_key": "k", "title": "t", "lines": [
            {"sku_id": sku, "price": cny(800)}], "cut_off_at": iso(datetime.now(timezone.utc) + timedelta(hours=1)),
            "pickup_date": "tomorrow"}}, "pickup_date"),
        ("GET", "/v1/staff/community/campaigns/cmp_x/pick-list", {}, "campaign_id"),
        ("POST", f"/v1/staff/community/campaigns/{cmp}/batches/cld_x:deliver", {"json": {}}, "leader_id"),
        ("POST", "/v1/staff/community/pickups", {"json": {"campaign_id": cmp, "leader_id": ml, "pickup_code": "x"}},
         "pickup_code"),
        ("PUT", "/v1/staff/community/settings", {"json": {"settings": {"uncollected_days": 99}}},
         "settings.uncollected_days"),
    ]
    for method, path, kw, field in staff_bad:
        refused(shop.as_staff(method, path, **kw), 400, fields={field})
    refused(shop.as_staff("POST", "/v1/staff/community/campaigns", json={
        "idempotency_key": "k2", "title": "t", "lines": [{"sku_id": sku, "price": cny(1000)}],
        "cut_off_at": iso(datetime.now(timezone.utc) + timedelta(hours=1)), "pickup_date": "2026-12-31"}),
        400, fields={"lines[0].price"})
    assert "settings" in ok(shop.as_staff("GET", "/v1/staff/community/settings"))

    # Another merchant's leader, campaign and orders: not found.
    for path, kw in [("/v1/community/campaigns", {"params": {"leader_id": tl}}),
                     (f"/v1/community/campaigns/{tc}", {}),
                     (f"/v1/community/dashboard/{tc}", {})]:
        refused(shop.call("GET", path, token=lt, **kw), 404)
    refused(shop.call("POST", "/v1/community/orders", token=token, json={
        "campaign_id": tc, "leader_id": tl, "idempotency_key": "k", "lines": [{"sku_id": their_sku, "quantity": 1}]}),
        404)
    refused(shop.call("POST", "/v1/community/pickups", token=lt, json={"campaign_id": tc, "pickup_code": code}), 404)
    for method, path, kw in [
        ("POST", f"/v1/staff/community/leaders/{tl}:review", {"json": {"approve": True}}),
        ("POST", f"/v1/staff/community/leaders/{tl}:setEnabled", {"json": {"enabled": False}}),
        ("GET", f"/v1/staff/community/leaders/{tl}", {}),
        ("GET", f"/v1/staff/community/campaigns/{tc}/pick-list", {}),
        ("POST", f"/v1/staff/community/campaigns/{tc}/batches/{tl}:deliver", {"json": {}}),
        ("POST", "/v1/staff/community/pickups", {"json": {"campaign_id": tc, "leader_id": tl, "pickup_code": code}}),
    ]:
        refused(shop.as_staff(method, path, **kw), 404)
    assert tl not in str(ok(shop.as_staff("GET", "/v1/staff/community/leaders")))

    # The wrong role: a GUIDE reaches no staff route (member routes take no staff token at all).
    guide = staff_with(shop, "GUIDE")
    staff_routes = [
        ("POST", f"/v1/staff/community/leaders/{ml}:review", {"json": {"approve": True}}),
        ("POST", f"/v1/staff/community/leaders/{ml}:setEnabled", {"json": {"enabled": False}}),
        ("GET", f"/v1/staff/community/leaders/{ml}", {}),
        ("GET", "/v1/staff/community/leaders", {}),
        ("POST", "/v1/staff/community/campaigns", {"json": {"idempotency_key": "k3", "title": "t", "lines": [
            {"sku_id": sku, "price": cny(800)}], "cut_off_at": iso(datetime.now(timezone.utc) + timedelta(hours=1)),
            "pickup_date": "2026-12-31"}}),
        ("GET", f"/v1/staff/community/campaigns/{cmp}/pick-list", {}),
        ("POST", f"/v1/staff/community/campaigns/{cmp}/batches/{ml}:deliver", {"json": {}}),
        ("POST", "/v1/staff/community/pickups", {"json": {"campaign_id": cmp, "leader_id": ml, "pickup_code": code}}),
        ("GET", "/v1/staff/community/settings", {}),
        ("PUT", "/v1/staff/community/settings", {"json": {"settings": {"uncollected_days": 3}}}),
    ]
    for method, path, kw in staff_routes:
        refused(shop.call(method, path, channel=None, token=guide, **kw), 403)
    assert ok(shop.as_staff("GET", f"/v1/staff/community/leaders/{ml}"))["leader"]["enabled"] is True
    assert_routes_named(__file__, ROUTES)


# Every RPC of the block by name: a new one fails here until its route table above has a case.
BLOCK_RPCS = {
    "ApplyCommunityLeader",
    "ConfirmCommunityPickup",
    "CreateCommunityCampaign",
    "GetCommunityCampaign",
    "GetCommunityLeader",
    "GetCommunityLeaderDashboard",
    "GetCommunityPickList",
    "GetCommunitySettings",
    "ListCommunityCampaigns",
    "ListCommunityLeaders",
    "MarkCommunityBatchDelivered",
    "PlaceCommunityOrder",
    "ReviewCommunityLeader",
    "SetCommunityLeaderEnabled",
    "StaffConfirmCommunityPickup",
    "UpdateCommunitySettings",
}


def test_the_route_table_covers_exactly_these_rpcs():
    assert set(ROUTES) == BLOCK_RPCS
