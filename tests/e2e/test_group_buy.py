"""Group buy (拼团) end to end over HTTP: open, share, join, formed (both orders PAID and
shippable, GROUPING not shippable before); a group that expires is refunded once with the
units back; a scaled-down race of members joining groups at once never overfills one;
every route of the block refuses bad input (400), other merchants (404), wrong roles (403)."""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from siyu_kit.ids import new_id
from tests.support import assert_routes_named, block_routes, wait_until
from tests.support.shop import Shop, ok, refused, staff_with

ROUTES = block_routes("siyu/order/v1/order.proto", "Group buy")
# The scaled-down race: this many groups of 3, each joined by 3 members at once (the full
# size is make bench's group_buy).
GROUPS = 3


def fen(m: dict | None) -> int:
    return int((m or {}).get("amount", 0))


def cny(amount: int) -> dict:
    return {"amount": str(amount), "currency": "CNY"}


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def new_activity(shop: Shop, sku: str, product: str, *, size: int = 2, units: int = 10, ends_in_s: float = 3600,
                 **extra) -> dict:
    now = datetime.now(timezone.utc)
    return ok(shop.as_staff("POST", "/v1/staff/group-buys", json={
        "idempotency_key": uuid.uuid4().hex, "activity": {
            "title": "两人团", "product_id": product, "group_size": size,
            "skus": [{"sku_id": sku, "group_price": cny(6000), "leader_price": cny(5000), "units": str(units)}],
            "starts_at": iso(now - timedelta(seconds=5)), "ends_at": iso(now + timedelta(seconds=ends_in_s)),
            **extra}}))["activity"]


def product_with(shop: Shop, stock: int) -> tuple[str, str]:
    p = shop.new_product(stock=stock, price=10000)
    return p["product_id"], p["skus"][0]["sku_id"]


def member(shop: Shop) -> str:
    return shop.login(f"gb-{uuid.uuid4().hex[:10]}")["access_token"]


def buy(shop: Shop, token: str, activity: dict, sku: str, group_id: str = "", **extra):
    return shop.call("POST", f"/v1/group-buys/{activity['activity_id']}:buy", token=token, json={
        "idempotency_key": uuid.uuid4().hex, "sku_id": sku, "group_id": group_id, **extra})


def order_of(shop: Shop, order_id: str) -> dict:
    return ok(shop.as_staff("GET", f"/v1/staff/orders/{order_id}"))


def state_of(shop: Shop, order_id: str) -> str:
    return order_of(shop, order_id)["order"]["state"]


def group_of(shop: Shop, token: str, group_id: str) -> dict | None:
    resp = shop.call("GET", f"/v1/groups/{group_id}", token=token)
    return resp.json()["group"] if resp.status_code == 200 else None


def test_open_share_join_forms_and_both_orders_become_paid_and_shippable(shop: Shop):
    product, sku = product_with(shop, stock=20)
    activity = new_activity(shop, sku, product)
    assert [int(s["units_left"]) for s in activity["skus"]] in ([0], [10])  # the list shows the pool below
    listed = ok(shop.call("GET", "/v1/group-buys", token=member(shop)))["activities"]
    assert activity["activity_id"] in {a["activity_id"] for a in listed}
    leader, friend = member(shop), member(shop)
    refused(buy(shop, leader, activity, sku, coupon_id=new_id("cpn")), 400, "COUPON_NOT_ALLOWED")

    opened = ok(buy(shop, leader, activity, sku))["order"]
    group_id = opened["activity"]["group_id"]
    assert opened["activity"]["group_leader"] is True and opened["kind"] == "ORDER_KIND_GROUP_BUY"
    line = opened["lines"][0]
    assert fen(line["line_amount"]) == 5000  # the leader price
    assert [st["step"] for st in line["steps"]][:1] == ["GROUP_BUY_PRICE"]
    shop.pay(leader, opened["order_id"])
    wait_until(lambda: state_of(shop, opened["order_id"]) == "ORDER_STATE_GROUPING", message="GROUPING")
    # Paid but waiting for the group: not shippable.
    refused(shop.as_staff("POST", f"/v1/staff/orders/{opened['order_id']}:ship",
                          json={"carrier": "SF", "tracking_number": "SF1"}), 400, "ORDER_NOT_SHIPPABLE")
    group = wait_until(lambda: group_of(shop, friend, group_id), message="the group opened")
    assert (group["state"], group["slots_left"], group["size"]) == ("GROUP_STATE_OPEN", 1, 2)
    assert group["leader_nickname"].endswith("**") and int(group["seconds_left"]) > 0
    joinable = ok(shop.call("GET", f"/v1/group-buys/{activity['activity_id']}/groups", token=friend))["groups"]
    assert group_id in {g["group_id"] for g in joinable}
    refused(buy(shop, leader, activity, sku, group_id), 400, "GROUP_OWN")

    # The share code carries the group; the friend joins at the group price.
    joined = ok(buy(shop, friend, activity, sku, group_id, attribution={"share_code": "gb-share-1"}))["order"]
    assert fen(joined["lines"][0]["line_amount"]) == 6000 and joined["activity"]["group_leader"] is False
    shop.pay(friend, joined["order_id"])
    for order_id in (opened["order_id"], joined["order_id"]):
        wait_until(lambda: state_of(shop, order_id) == "ORDER_STATE_PAID", message="PAID when the group formed")
    formed = ok(shop.as_staff("GET", f"/v1/staff/groups/{group_id}"))["group"]
    assert formed["state"] == "GROUP_STATE_FORMED" and formed["paid"] == 2 and formed["slots_left"] == 0
    assert {m["order_id"] for m in formed["members"]} == {opened["order_id"], joined["order_id"]}
    refused(buy(shop, member(shop), activity, sku, group_id), 400, "GROUP_NOT_JOINABLE")
    ok(shop.as_staff("POST", f"/v1/staff/orders/{opened['order_id']}:ship",
                     json={"carrier": "SF", "tracking_number": "SF2"}))
    mine = ok(shop.call("GET", "/v1/me/groups", token=friend))["groups"]
    assert [g["group_id"] for g in mine] == [group_id]
    me = next(m for m in mine[0]["members"] if m["order_id"])
    assert me["order_id"] == joined["order_id"]  # a member sees only their own order id
    left = ok(shop.call("GET", f"/v1/group-buys/{activity['activity_id']}", token=friend))["activity"]
    assert int(left["skus"][0]["units_left"]) == 8
    staff_list = ok(shop.as_staff("GET", "/v1/staff/group-buys", params={"page_size": 5}))["activities"]
    assert activity["activity_id"] in {a["activity_id"] for a in staff_list}


def test_an_expired_group_is_refunded_once_and_its_units_go_back(shop: Shop):
    product, sku = product_with(shop, stock=10)
    # The group's deadline is capped at the activity's end: a few seconds from now.
    activity = new_activity(shop, sku, product, size=3, units=5, ends_in_s=8)
    token = member(shop)
    order = ok(buy(shop, token, activity, sku))["order"]
    shop.pay(token, order["order_id"])
    wait_until(lambda: state_of(shop, order["order_id"]) in ("ORDER_STATE_GROUPING", "ORDER_STATE_CANCELLED"),
               message="paid")
    view = wait_until(lambda: (v := order_of(shop, order["order_id"]))["order"]["state"] == "ORDER_STATE_CANCELLED"
                      and v, timeout=20, message="refunded when the group failed")
    assert view["order"]["cancel_reason"] == "GROUP_FAILED"
    assert fen(view["order"]["refunded_amount"]) == fen(order["payable"])
    assert [p["state"] for p in view["payments"]] == ["PAYMENT_STATE_REFUNDED"]
    group = ok(shop.as_staff("GET", f"/v1/staff/groups/{order['activity']['group_id']}"))["group"]
    assert group["state"] == "GROUP_STATE_FAILED" and group["failed_reason"] == "GROUP_EXPIRED"
    ledger = ok(shop.as_staff("GET", f"/v1/staff/orders/{order['order_id']}/ledger"))
    assert ledger["balanced"] is True
    kinds = sorted(e["kind"] for e in ledger["entries"])
    assert kinds == ["ORDER_PAYMENT", "STOCK_REFUND"], kinds  # applied and returned, once each
    # The reservation is released: the unit is in the pool or, the pool having ended, back on the SKU.
    def units_left() -> int:
        return int(ok(shop.call("GET", f"/v1/group-buys/{activity['activity_id']}", token=token))[
            "activity"]["skus"][0]["units_left"])
    wait_until(lambda: shop.stock(sku)["available"] + units_left() == 10, timeout=20, message="the unit back")


def test_members_joining_groups_at_once_never_overfill_one(shop: Shop):
    product, sku = product_with(shop, stock=20)
    activity = new_activity(shop, sku, product, size=3, units=12)
    leaders = [member(shop) for _ in range(GROUPS)]
    groups = []
    for token in leaders:
        o = ok(buy(shop, token, activity, sku))["order"]
        shop.pay(token, o["order_id"])
        groups.append(o["activity"]["group_id"])
    for g in groups:
        wait_until(lambda: group_of(shop, leaders[0], g), message="groups opened")
    joiners = [member(shop) for _ in range(3 * GROUPS)]  # 3 per group: one too many for each

    def join(i: int) -> str:
        token = joiners[i]
        resp = buy(shop, token, activity, sku, groups[i % GROUPS])
        if resp.status_code != 200:
            return ""
        order_id = resp.json()["order"]["order_id"]
        shop.pay(token, order_id)
        return order_id

    with ThreadPoolExecutor(len(joiners)) as pool:
        placed = [o for o in pool.map(join, range(len(joiners))) if o]

    def settled() -> bool:
        return all(state_of(shop, o) in ("ORDER_STATE_PAID", "ORDER_STATE_CANCELLED") for o in placed)
    wait_until(settled, timeout=30, message="every joiner PAID or refunded")
    for g in groups:
        seen = ok(shop.as_staff("GET", f"/v1/staff/groups/{g}"))["group"]
        assert seen["paid"] <= 3 and len(seen["members"]) == seen["paid"]
        assert seen["state"] == "GROUP_STATE_FORMED" and seen["paid"] == 3
        for m in seen["members"]:
            assert state_of(shop, m["order_id"]) == "ORDER_STATE_PAID"
    refunded = [o for o in placed if state_of(shop, o) == "ORDER_STATE_CANCELLED"]
    assert len(refunded) == len(placed) - 2 * GROUPS
    for o in refunded:
        view = order_of(shop, o)
        assert view["order"]["cancel_reason"] in ("GROUP_FULL", "GROUP_CLOSED")
        assert [p["state"] for p in view["payments"]] == ["PAYMENT_STATE_REFUNDED"]


def test_every_route_refuses_bad_input_other_merchants_and_the_wrong_role(shop: Shop, other_shop: Shop):
    product, sku = product_with(other_shop, stock=5)
    theirs = new_activity(other_shop, sku, product, size=2, units=2)
    their_member = member(other_shop)
    their_order = ok(buy(other_shop, their_member, theirs, sku))["order"]
    their_group = their_order["activity"]["group_id"]
    token = member(shop)
    gba, grp = theirs["activity_id"], their_group
    bad = [
        ("POST", "/v1/staff/group-buys", {"json": {"idempotency_key": "k", "activity": {"title": ""}}},
         "activity.title", True),
        ("PATCH", "/v1/staff/group-buys/gba_x", {"json": {"expected_version": 1}}, "activity_id", True),
        ("POST", "/v1/staff/group-buys/gba_x:end", {"json": {}}, "activity_id", True),
        ("GET", "/v1/staff/group-buys", {"params": {"page_size": 500}}, "page_size", True),
        ("GET", "/v1/staff/groups/grp_x", {}, "group_id", True),
        ("GET", "/v1/group-buys", {"params": {"page_token": "nope"}}, "page_token", False),
        ("GET", "/v1/group-buys/gba_x", {}, "activity_id", False),
        ("POST", f"/v1/group-buys/{gba}:buy", {"json": {"idempotency_key": "k", "sku_id": "x"}}, "sku_id", False),
        ("GET", "/v1/group-buys/gba_x/groups", {}, "activity_id", False),
        ("GET", "/v1/groups/grp_x", {}, "group_id", False),
        ("GET", "/v1/me/groups", {"params": {"page_size": 500}}, "page_size", False),
    ]
    for method, path, kw, field, staff in bad:
        resp = shop.as_staff(method, path, **kw) if staff else shop.call(method, path, token=token, **kw)
        refused(resp, 400, fields={field})
    for method, path, kw, staff in [
        ("PATCH", f"/v1/staff/group-buys/{gba}", {"json": {"expected_version": 1, "title": "x"}}, True),
        ("POST", f"/v1/staff/group-buys/{gba}:end", {"json": {}}, True),
        ("GET", f"/v1/staff/groups/{grp}", {}, True),
        ("GET", f"/v1/group-buys/{gba}", {}, False),
        ("POST", f"/v1/group-buys/{gba}:buy", {"json": {"idempotency_key": "k", "sku_id": sku}}, False),
        ("GET", f"/v1/group-buys/{gba}/groups", {}, False),
        ("GET", f"/v1/groups/{grp}", {}, False),
    ]:
        resp = shop.as_staff(method, path, **kw) if staff else shop.call(method, path, token=token, **kw)
        refused(resp, 404)
    mine = ok(shop.as_staff("GET", "/v1/staff/group-buys"))["activities"]
    assert gba not in {a["activity_id"] for a in mine}
    assert ok(shop.call("GET", "/v1/me/groups", token=token))["groups"] == []
    # Staff routes: a FINANCE user reaches none; a GUIDE reads but does not change.
    guide, finance = (staff_with(shop, r) for r in ("GUIDE", "FINANCE"))
    staff_routes = [
        ("POST", "/v1/staff/group-buys", {"json": {"idempotency_key": "k", "activity": {"title": "x"}}}),
        ("PATCH", f"/v1/staff/group-buys/{gba}", {"json": {"expected_version": 1}}),
        ("POST", f"/v1/staff/group-buys/{gba}:end", {"json": {}}),
        ("GET", "/v1/staff/group-buys", {}),
        ("GET", f"/v1/staff/groups/{grp}", {}),
    ]
    for method, path, kw in staff_routes:
        refused(shop.call(method, path, channel=None, token=finance, **kw), 403)
    for method, path, kw in staff_routes[:3]:
        refused(shop.call(method, path, channel=None, token=guide, **kw), 403)
    ok(shop.call("GET", "/v1/staff/group-buys", channel=None, token=guide))
    # Member routes with a staff token: denied.
    for method, path in [("GET", "/v1/group-buys"), ("GET", f"/v1/group-buys/{gba}"),
                         ("POST", f"/v1/group-buys/{gba}:buy"), ("GET", f"/v1/group-buys/{gba}/groups"),
                         ("GET", f"/v1/groups/{grp}"), ("GET", "/v1/me/groups")]:
        resp = shop.call(method, path, channel=None, token=guide, **({"json": {}} if method == "POST" else {}))
        assert resp.status_code in (401, 403), resp.text
    assert_routes_named(__file__, ROUTES)


# Every RPC of the block by name: a new one fails here until its route table above has a case.
BLOCK_RPCS = {
    "CreateGroupBuyActivity",
    "EndGroupBuyActivity",
    "GetGroup",
    "GetGroupBuyActivity",
    "GetStaffGroup",
    "ListGroupBuyActivities",
    "ListJoinableGroups",
    "ListMyGroups",
    "ListStaffGroupBuyActivities",
    "PlaceGroupBuyOrder",
    "UpdateGroupBuyActivity",
}


def test_the_route_table_covers_exactly_these_rpcs():
    assert set(ROUTES) == BLOCK_RPCS
