"""Bargains (砍价) end to end over HTTP: an operator's activity, a member's bargain helped
down to the floor by friends (a new one bound as the starter's invitee), ordered at the
floor price and paid; twenty helpers at once on a bargain needing six; an expired bargain
failed by the job; every bargain route refuses bad input (400), other merchants (404) and
the wrong role (403)."""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from siyu_kit.ids import new_id
from services.order.domain.bargains import cuts
from tests.support import assert_routes_named, block_routes, wait_until
from tests.support.shop import Shop, ok, refused, staff_with

SHANGHAI = ZoneInfo("Asia/Shanghai")
ROUTES = block_routes("siyu/order/v1/order.proto", "Bargain")


def cny(amount: int) -> dict:
    return {"amount": str(amount), "currency": "CNY"}


def fen(m: dict | None) -> int:
    return int((m or {}).get("amount", 0))


def iso(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def activity_input(sku: str, *, helpers: int = 3, start: int = 10_000, floor: int = 1_000,
                   ends_in: timedelta = timedelta(days=2), **more) -> dict:
    now = datetime.now(timezone.utc)
    return {"sku_id": sku, "start_price": cny(start), "floor_price": cny(floor), "helpers_needed": helpers,
            "starts_at": iso(now - timedelta(minutes=1)), "ends_at": iso(now + ends_in), "units": "5",
            "helps_per_day": 5, **more}


def new_activity(shop: Shop, **kw) -> dict:
    sku = shop.new_sku(stock=10, price=20_000)
    return ok(shop.as_staff("POST", "/v1/staff/bargain-activities", json={
        "idempotency_key": uuid.uuid4().hex, "activity": activity_input(sku, **kw)}))["activity"]


def member(shop: Shop) -> str:
    return shop.login(f"bgn-{uuid.uuid4().hex[:10]}")["access_token"]


def start(shop: Shop, token: str, activity_id: str, **attribution) -> dict:
    body = {"attribution": attribution} if attribution else {}
    return ok(shop.call("POST", f"/v1/bargain-activities/{activity_id}:start", token=token, json=body))


def help_(shop: Shop, token: str, bargain_id: str, nickname: str = "小明"):
    return shop.call("POST", f"/v1/bargains/{bargain_id}:help", token=token, json={"nickname": nickname})


def test_helped_to_the_floor_ordered_at_the_floor_and_paid(shop: Shop):
    a = new_activity(shop, bind_new_helpers=True)
    assert int(a["units_left"]) == 5 and a["pool_id"].startswith("fls_")
    listed = ok(shop.call("GET", "/v1/bargain-activities", params={"page_size": 100}, token=member(shop)))
    assert a["activity_id"] in [x["activity_id"] for x in listed["activities"]]
    starter = member(shop)
    code = f"bgn-{uuid.uuid4().hex[:12]}"
    started = start(shop, starter, a["activity_id"], share_code=code)
    b = started["bargain"]
    assert started["created"] and fen(b["price"]) == 10_000 and b["helpers_left"] == 3
    again = start(shop, starter, a["activity_id"])
    assert again["bargain"]["bargain_id"] == b["bargain_id"] and not again.get("created")
    bid = b["bargain_id"]
    # Ordering before the floor is refused for this activity; the starter cannot help.
    refused(shop.call("POST", f"/v1/bargains/{bid}:order", token=starter,
                      json={"idempotency_key": "early"}), 400, "BARGAIN_NOT_REACHED")
    refused(help_(shop, starter, bid), 400, "OWN_BARGAIN")
    helpers = [member(shop) for _ in range(3)]
    first = ok(help_(shop, helpers[0], bid, "张小明"))
    assert first["bound_as_invitee"] is True
    refused(help_(shop, helpers[0], bid), 400, "ALREADY_HELPED")
    for h in helpers[1:]:
        ok(help_(shop, h, bid))
    refused(help_(shop, member(shop), bid), 400, "BARGAIN_FINISHED")
    page = ok(shop.call("GET", f"/v1/bargains/{bid}", token=helpers[0]))["bargain"]
    assert page["state"] == "BARGAIN_STATE_SUCCEEDED" and fen(page["price"]) == 1_000
    assert page["helps"][0]["nickname"] == "张**" and page["helps"][0]["mine"] is True
    assert sum(fen(h["cut"]) for h in page["helps"]) == 9_000 and int(page.get("seed", 0)) == 0
    # The start and each help reach the share code's funnel (content service, through events).
    today = datetime.now(SHANGHAI).date()
    days = {"from_day": (today - timedelta(days=1)).isoformat(), "to_day": (today + timedelta(days=1)).isoformat()}

    def share_funnel():
        answer = shop.as_staff("GET", "/v1/staff/funnel-report", params={
            "dimension": "FUNNEL_DIMENSION_SHARE_CODE", "ref_id": code, **days})
        total = answer.json().get("total", {}) if answer.status_code == 200 else {}
        return total if int(total.get("bargain_helps", 0)) == 3 else None
    assert int(wait_until(share_funnel, message="the helps counted in the share code's funnel")["bargain_starts"]) == 1
    # The dispute view replays the cuts from the stored seed.
    staff = ok(shop.as_staff("GET", f"/v1/staff/bargains/{bid}"))["bargain"]
    assert [fen(h["cut"]) for h in staff["helps"]] == list(cuts(10_000, 1_000, 3, int(staff["seed"])))
    # The new helper is the starter's invitee.
    # Every helper here is a new member, so each is now the starter's invitee.
    invitees = ok(shop.call("GET", "/v1/me/referral", token=starter))["invitees"]
    assert len(invitees) == 3

    placed = ok(shop.call("POST", f"/v1/bargains/{bid}:order", token=starter, json={"idempotency_key": "o1"}))
    order = placed["order"]
    assert order["kind"] == "ORDER_KIND_BARGAIN" and order["activity"]["bargain_id"] == bid
    assert fen(order["lines"][0]["line_amount"]) == 1_000
    assert placed["bargain"]["state"] == "BARGAIN_STATE_ORDERED"
    same = ok(shop.call("POST", f"/v1/bargains/{bid}:order", token=starter, json={"idempotency_key": "o1"}))
    assert same["order"]["order_id"] == order["order_id"]
    refused(shop.call("POST", f"/v1/bargains/{bid}:order", token=starter, json={"idempotency_key": "o2"}),
            400, "BARGAIN_FINISHED")
    shop.pay(starter, order["order_id"])
    paid = wait_until(lambda: (o := ok(shop.call("GET", f"/v1/orders/{order['order_id']}", token=starter))["order"])
                      ["state"] == "ORDER_STATE_PAID" and o, message="the bargain order paid")
    assert fen(paid["payable"]) >= 1_000
    mine = ok(shop.call("GET", "/v1/me/bargains", token=starter))["bargains"]
    assert [x["bargain_id"] for x in mine] == [bid] and mine[0]["order_id"] == order["order_id"]
    assert int(ok(shop.call("GET", f"/v1/bargain-activities/{a['activity_id']}",
                            token=starter))["activity"]["units_left"]) == 4


def test_twenty_helpers_at_once_take_exactly_the_six_cuts_needed(shop: Shop):
    # Scaled down from the bench's 200 helpers on a bargain needing 10 (make bench ARGS=bargain).
    a = new_activity(shop, helpers=6, start=5_000, floor=500, helps_per_member=1)
    starter = member(shop)
    bid = start(shop, starter, a["activity_id"])["bargain"]["bargain_id"]
    with ThreadPoolExecutor(max_workers=20) as pool:
        tokens = list(pool.map(lambda _: member(shop), range(20)))
        answers = list(pool.map(lambda t: help_(shop, t, bid), tokens))
    accepted = [r for r in answers if r.status_code == 200]
    assert len(accepted) == 6
    assert all(r.status_code in (400, 409) for r in answers if r.status_code != 200)
    b = ok(shop.call("GET", f"/v1/bargains/{bid}", token=starter))["bargain"]
    assert len(b["helps"]) == 6 and fen(b["price"]) == 500 and b["state"] == "BARGAIN_STATE_SUCCEEDED"


def test_a_bargain_past_its_time_fails_by_the_job(shop: Shop):
    a = new_activity(shop, ends_in=timedelta(seconds=2))
    starter = member(shop)
    bid = start(shop, starter, a["activity_id"])["bargain"]["bargain_id"]
    failed = wait_until(lambda: (b := ok(shop.call("GET", f"/v1/bargains/{bid}", token=starter))["bargain"])
                        ["state"] == "BARGAIN_STATE_FAILED" and b, timeout=15, message="the bargain failed")
    assert int(failed.get("seconds_left", 0)) == 0
    refused(help_(shop, member(shop), bid), 400, "BARGAIN_EXPIRED")
    refused(shop.call("POST", f"/v1/bargains/{bid}:order", token=starter, json={"idempotency_key": "late"}),
            400, "BARGAIN_EXPIRED")


def test_every_bargain_route_refuses_bad_input_other_merchants_and_the_wrong_role(shop: Shop, other_shop: Shop):
    assert_routes_named(__file__, ROUTES)
    theirs = new_activity(other_shop)
    their_bargain = start(other_shop, member(other_shop), theirs["activity_id"])["bargain"]["bargain_id"]
    sku = shop.new_sku(stock=5, price=20_000)
    token = member(shop)
    # Bad input: 400 with the field named, nothing written.
    staff_bad = [
        ("POST", "/v1/staff/bargain-activities", {"json": {"idempotency_key": "k", "activity": activity_input(
            sku, helpers=10, start=100, floor=95)}}, "activity.helpers_needed"),
        ("PATCH", "/v1/staff/bargain-activities/bga_x", {"json": {}}, "activity_id"),
        ("POST", "/v1/staff/bargain-activities/bga_x:end", {"json": {}}, "activity_id"),
        ("GET", "/v1/staff/bargain-activities", {"params": {"page_size": 500}}, "page_size"),
        ("GET", "/v1/staff/bargains/bgn_x", {}, "bargain_id"),
    ]
    for method, path, kw, field in staff_bad:
        refused(shop.as_staff(method, path, **kw), 400, fields={field})
    member_bad = [
        ("GET", "/v1/bargain-activities", {"params": {"page_token": "x"}}, "page_token"),
        ("GET", "/v1/bargain-activities/bga_x", {}, "activity_id"),
        ("POST", "/v1/bargain-activities/bga_x:start", {"json": {}}, "activity_id"),
        ("POST", "/v1/bargains/bgn_x:help", {"json": {}}, "bargain_id"),
        ("GET", "/v1/bargains/bgn_x", {}, "bargain_id"),
        ("GET", "/v1/me/bargains", {"params": {"page_size": 500}}, "page_size"),
        ("POST", f"/v1/bargains/{new_id('bgn')}:order", {"json": {}}, "idempotency_key"),
    ]
    for method, path, kw, field in member_bad:
        refused(shop.call(method, path, token=token, **kw), 400, fields={field})
    # Another merchant's activity and bargain: not found.
    ta = theirs["activity_id"]
    for method, path, kw in [
        ("PATCH", f"/v1/staff/bargain-activities/{ta}", {"json": {"ends_at": iso(datetime.now(timezone.utc))}}),
        ("POST", f"/v1/staff/bargain-activities/{ta}:end", {"json": {}}),
        ("GET", f"/v1/staff/bargains/{their_bargain}", {}),
    ]:
        refused(shop.as_staff(method, path, **kw), 404)
    for method, path, kw in [
        ("GET", f"/v1/bargain-activities/{ta}", {}),
        ("POST", f"/v1/bargain-activities/{ta}:start", {"json": {}}),
        ("POST", f"/v1/bargains/{their_bargain}:help", {"json": {}}),
        ("GET", f"/v1/bargains/{their_bargain}", {}),
        ("POST", f"/v1/bargains/{their_bargain}:order", {"json": {"idempotency_key": "k"}}),
    ]:
        refused(shop.call(method, path, token=token, **kw), 404)
    # The wrong role: a GUIDE reaches none of the staff routes; staff are not members.
    guide = staff_with(shop, "GUIDE")
    mine = new_activity(shop)["activity_id"]
    staff_routes = [
        ("POST", "/v1/staff/bargain-activities", {"json": {"idempotency_key": "k", "activity": activity_input(sku)}}),
        ("PATCH", f"/v1/staff/bargain-activities/{mine}", {"json": {"ends_at": iso(datetime.now(timezone.utc))}}),
        ("POST", f"/v1/staff/bargain-activities/{mine}:end", {"json": {}}),
        ("GET", "/v1/staff/bargain-activities", {}),
        ("GET", f"/v1/staff/bargains/{new_id('bgn')}", {}),
    ]
    for method, path, kw in staff_routes:
        refused(shop.call(method, path, channel=None, token=guide, **kw), 403)
    refused(shop.call("GET", "/v1/me/bargains", token=guide), 401, "TOKEN_KIND")
    # A member token on a staff route.
    refused(shop.call("GET", "/v1/staff/bargain-activities", channel=None, token=token), 401, "TOKEN_KIND")


# Every RPC of the block by name: a new one fails here until its route table above has a case.
BLOCK_RPCS = {
    "CreateBargainActivity",
    "EndBargainActivity",
    "GetBargain",
    "GetBargainActivity",
    "GetStaffBargain",
    "HelpBargain",
    "ListBargainActivities",
    "ListMyBargains",
    "ListStaffBargainActivities",
    "PlaceBargainOrder",
    "StartBargain",
    "UpdateBargainActivity",
}


def test_the_route_table_covers_exactly_these_rpcs():
    assert set(ROUTES) == BLOCK_RPCS
