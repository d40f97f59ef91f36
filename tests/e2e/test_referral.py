"""Referral (老带新) over HTTP, as the mini-program and the staff console use it: a member
reads their invite code, a friend logs in for the first time with it and is bound; when
the friend's first order completes (paid, shipped, receipt confirmed) the inviter gets
points and the friend a new-member coupon, once, also when the completion event is
delivered again; a first order refunded before completion pays nothing and the next one
that completes is the first. Every new route: bad input → 400 with field violations and
nothing written, another merchant → not found, a wrong role → denied (the cross-merchant
table of test_commerce_every_rpc has a referral block too)."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import nats
from siyu.order.v1 import events_pb2 as order_events, order_pb2

from siyu_kit.events.outbox import decode, make_event
from siyu_kit.protos import money, timestamp
from tests.support import wait_until
from tests.support.shop import Shop, ok, paid_order, refused, staff_with

# Tests here read what the merchant holds as a whole, or change it: a new merchant for each.
SHOP_PER_TEST = True


def active_template(shop: Shop) -> str:
    made = ok(shop.as_staff("POST", "/v1/staff/coupon-templates", json={
        "idempotency_key": uuid.uuid4().hex, "name": "新人券", "staff_only": True,
        "rule": {"kind": "COUPON_KIND_NO_THRESHOLD", "amount_off": "500", "scope": "COUPON_SCOPE_ALL"},
        "validity": {"days": 30}, "total": "0", "per_member_limit": 5}))["template"]
    ok(shop.as_staff("POST", f"/v1/staff/coupon-templates/{made['template_id']}:setState",
                     json={"state": "COUPON_TEMPLATE_STATE_ACTIVE"}))
    return made["template_id"]


def turn_on(shop: Shop, points: int = 100) -> dict:
    return ok(shop.as_staff("PUT", "/v1/staff/referral-settings", json={"settings": {
        "enabled": True, "inviter_reward_kind": "REFERRAL_REWARD_KIND_POINTS", "inviter_points": str(points),
        "invitee_coupon_template_id": active_template(shop), "monthly_cap": 20}}))["settings"]


def login(shop: Shop, unionid: str, invite_code: str = "", channel: str = "H5") -> dict:
    body = {"code": f"sandbox:{unionid}", "nickname": "王小明"}
    if invite_code:
        body["invite_code"] = invite_code
    return ok(shop.call("POST", "/v1/auth/login", channel=channel, json=body))


def my_referral(shop: Shop, token: str, **params) -> dict:
    return ok(shop.call("GET", "/v1/me/referral", token=token, params=params))



def complete(shop: Shop, token: str, order_id: str) -> None:
    wait_until(lambda: ok(shop.call("GET", f"/v1/orders/{order_id}", token=token))["order"]["state"]
               == "ORDER_STATE_PAID", message="order paid")
    ok(shop.as_staff("POST", f"/v1/staff/orders/{order_id}:ship",
                     json={"carrier": "SF Express", "tracking_number": "SF100200300"}))
    done = ok(shop.call("POST", f"/v1/orders/{order_id}:confirmReceipt", token=token, json={}))["order"]
    assert done["state"] == "ORDER_STATE_COMPLETED"


def rewarded(shop: Shop, token: str) -> dict:
    """The inviter's one invitee once their reward was decided."""
    return wait_until(lambda: (i := my_referral(shop, token).get("invitees", [])) and i[0].get("reward", {}).get(
        "outcome") and i[0], message="referral rewarded")


def referral_entries(shop: Shop, token: str) -> list[dict]:
    entries = ok(shop.call("GET", "/v1/me/points/history", token=token, params={"page_size": 100})).get("entries", [])
    return [e for e in entries if e.get("kind") == "POINTS_MOVEMENT_REFERRAL"]


async def replay_completion(stack, merchant_id: str, member_id: str, order_id: str) -> int:
    """Delivers the order's completion again under a new event id; the stream sequence."""
    order = order_pb2.Order(order_id=order_id, member_id=member_id, payable=money(10000),
                            completed_at=timestamp(datetime.now(timezone.utc)))
    event = make_event("siyu.order.order.completed", merchant_id=merchant_id, aggregate_id=order_id,
                       aggregate_version=9, payload=order_events.OrderCompleted(order=order, confirmed_by="MEMBER"))
    nc = await nats.connect(stack.nats_url)
    try:
        ack = await nc.jetstream().publish(event.subject, event.data, headers={"Nats-Msg-Id": event.event_id})
        return ack.seq
    finally:
        await nc.close()


async def referral_events(stack, subject: str, referral_id: str) -> list:
    """The member service's events on `subject` for one referral, from the stream's start."""
    nc = await nats.connect(stack.nats_url)
    try:
        sub = await nc.jetstream().subscribe(subject, stream="SIYU_MEMBER", ordered_consumer=True)
        found = []
        while True:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                return found
            envelope = decode(msg.data)
            if envelope.aggregate_id == referral_id:
                found.append(envelope)
    finally:
        await nc.close()


async def acked_through(stack, seq: int) -> bool:
    nc = await nats.connect(stack.nats_url)
    try:
        info = await nc.jetstream().consumer_info("SIYU_ORDER", "member-referral-order-completed")
        return info.ack_floor.stream_seq >= seq and info.num_ack_pending == 0
    finally:
        await nc.close()


def test_a_friends_first_completed_order_rewards_both_once(shop, stack):
    turn_on(shop)
    alice_unionid = "ref-alice-" + uuid.uuid4().hex[:8]
    alice = login(shop, alice_unionid)
    code = my_referral(shop, alice["access_token"])["invite_code"]
    assert len(code) == 6 and not set(code) & set("0O1IL")
    assert my_referral(shop, alice["access_token"])["invite_code"] == code  # stable

    bob = login(shop, "ref-bob-" + uuid.uuid4().hex[:8], code.lower())
    assert bob["created"] and bob["referral"] == "REFERRAL_BINDING_BOUND"
    bob_token, bob_id = bob["access_token"], bob["member"]["member_id"]
    mine = my_referral(shop, bob_token)
    assert mine["invited"] and mine["inviter_nickname_masked"] == "王**"
    listed = my_referral(shop, alice["access_token"])["invitees"]
    assert [i["nickname_masked"] for i in listed] == ["王**"] and not listed[0].get("first_order_completed")

    order = paid_order(shop, bob_token, shop.new_sku(stock=5, price=10000))
    complete(shop, bob_token, order["order_id"])
    invitee = rewarded(shop, alice["access_token"])
    assert invitee["first_order_completed"] and invitee["reward"]["outcome"] == "PAID"
    assert int(invitee["reward"]["points"]) == 100
    assert [int(e["points"]) for e in referral_entries(shop, alice["access_token"])] == [100]
    coupons = ok(shop.call("GET", "/v1/me/coupons", token=bob_token)).get("coupons", [])
    assert [c["source"] for c in coupons] == ["COUPON_SOURCE_REFERRAL"]
    # The binding and the rewards went out as events, each once.
    for subject in ("siyu.member.referral.bound", "siyu.member.referral.rewarded"):
        events = wait_until(lambda s=subject: asyncio.run(referral_events(stack, s, invitee["referral_id"])),
                            message=f"{subject} published")
        assert len(events) == 1

    # The completion delivered again (a replay): nothing more is paid.
    seq = asyncio.run(replay_completion(stack, shop.data["merchant_id"], bob_id, order["order_id"]))
    wait_until(lambda: asyncio.run(acked_through(stack, seq)), message="replay consumed")
    assert [int(e["points"]) for e in referral_entries(shop, alice["access_token"])] == [100]
    assert len(ok(shop.call("GET", "/v1/me/coupons", token=bob_token)).get("coupons", [])) == 1

    # A code binds at registration only; an unknown code does not fail a login.
    again = login(shop, "ref-bob-again-" + uuid.uuid4().hex[:8], "ZZZZZZ")
    assert again["created"] and again["referral"] == "REFERRAL_BINDING_UNKNOWN_CODE"
    alice_again = ok(shop.call("POST", "/v1/auth/login", json={
        "code": f"sandbox:{alice_unionid}", "invite_code": mine["invite_code"]}))
    assert not alice_again["created"] and alice_again["referral"] == "REFERRAL_BINDING_NOT_NEW_MEMBER"
    assert not my_referral(shop, alice["access_token"]).get("invited")


def test_a_first_order_refunded_before_completion_pays_nothing(shop):
    turn_on(shop, points=50)
    carol = login(shop, "ref-carol-" + uuid.uuid4().hex[:8])
    code = my_referral(shop, carol["access_token"])["invite_code"]
    dan = login(shop, "ref-dan-" + uuid.uuid4().hex[:8], code)
    token = dan["access_token"]
    sku = shop.new_sku(stock=5, price=10000)

    first = paid_order(shop, token, sku)
    wait_until(lambda: ok(shop.call("GET", f"/v1/orders/{first['order_id']}", token=token))["order"]["state"]
               == "ORDER_STATE_PAID", message="order paid")
    line = first["lines"][0]["line_id"]
    refund = ok(shop.call("POST", f"/v1/orders/{first['order_id']}/refunds", token=token, json={
        "idempotency_key": uuid.uuid4().hex, "reason": "changed my mind",
        "lines": [{"line_id": line, "quantity": "1"}]}))["refund"]
    ok(shop.as_staff("POST", f"/v1/staff/refunds/{refund['refund_id']}:approve", json={}))
    wait_until(lambda: int(ok(shop.call("GET", f"/v1/orders/{first['order_id']}", token=token))["order"].get(
        "refunded_amount", {}).get("amount", 0)) == 10000, message="refunded in full")
    # Refunded in full, it can never complete: nothing is paid for it.
    refused(shop.as_staff("POST", f"/v1/staff/orders/{first['order_id']}:ship",
                          json={"carrier": "SF Express", "tracking_number": "SF1"}), 400)
    invitee = my_referral(shop, carol["access_token"])["invitees"][0]
    assert not invitee.get("first_order_completed") and not invitee.get("reward", {}).get("outcome")
    assert referral_entries(shop, carol["access_token"]) == []

    # The next order that completes is the first completed one.
    second = paid_order(shop, token, sku)
    complete(shop, token, second["order_id"])
    assert int(rewarded(shop, carol["access_token"])["reward"]["points"]) == 50
    assert [int(e["points"]) for e in referral_entries(shop, carol["access_token"])] == [50]



def test_new_referral_routes_refuse_bad_input_other_merchants_and_wrong_roles(shop, other_shop):
    settings = ok(shop.as_staff("GET", "/v1/staff/referral-settings"))["settings"]
    # bad input: 400 naming each field, nothing written
    for body, fields in (
            ({"settings": {"monthly_cap": 0, "inviter_points": "-1"}}, {"settings.monthly_cap", "settings.inviter_points"}),
            ({"settings": {"monthly_cap": 5, "inviter_reward_kind": "REFERRAL_REWARD_KIND_COUPON"}},
             {"settings.inviter_coupon_template_id"}),
            ({"settings": {"monthly_cap": 5, "inviter_reward_kind": "REFERRAL_REWARD_KIND_POINTS",
                           "invitee_coupon_template_id": "cpt_" + "Z" * 26}}, {"settings.invitee_coupon_template_id"}),
            ({"settings": {"monthly_cap": 5, "invitee_coupon_template_id": "nope"}},
             {"settings.invitee_coupon_template_id"}),
            ({}, {"settings"})):
        refused(shop.as_staff("PUT", "/v1/staff/referral-settings", json=body), 400, fields=fields)
    assert ok(shop.as_staff("GET", "/v1/staff/referral-settings"))["settings"] == settings
    member = login(shop, "ref-guard-" + uuid.uuid4().hex[:8])
    refused(shop.call("GET", "/v1/me/referral", token=member["access_token"], params={"page_token": "x"}), 400,
            fields={"page_token"})
    refused(shop.call("GET", "/v1/me/referral", token=member["access_token"], params={"page_size": 1000}), 400,
            fields={"page_size"})
    too_long = shop.call("POST", "/v1/auth/login", json={"code": "sandbox:ref-long", "invite_code": "A" * 40})
    refused(too_long, 400, fields={"invite_code"})
    assert login(shop, "ref-long")["created"]  # the refused login created nothing

    # another merchant: its settings are its own; its members do not see this merchant's
    template = active_template(shop)
    ok(shop.as_staff("PUT", "/v1/staff/referral-settings", json={"settings": {
        "enabled": True, "inviter_reward_kind": "REFERRAL_REWARD_KIND_COUPON", "inviter_coupon_template_id": template,
        "monthly_cap": 3}}))
    refused(other_shop.as_staff("PUT", "/v1/staff/referral-settings", json={"settings": {
        "enabled": True, "inviter_reward_kind": "REFERRAL_REWARD_KIND_COUPON", "inviter_coupon_template_id": template,
        "monthly_cap": 3}}), 400, fields={"settings.inviter_coupon_template_id"})
    assert not ok(other_shop.as_staff("GET", "/v1/staff/referral-settings"))["settings"].get("enabled")
    code = my_referral(shop, member["access_token"])["invite_code"]
    elsewhere = login(other_shop, "ref-elsewhere-" + uuid.uuid4().hex[:8], code)
    assert elsewhere["referral"] == "REFERRAL_BINDING_UNKNOWN_CODE"
    theirs = my_referral(other_shop, elsewhere["access_token"])
    assert theirs["invite_code"] != code and not theirs.get("invitees")
    # a member token of this merchant through the other merchant's key is refused
    assert shop.call("GET", "/v1/me/referral", channel=None, token=member["access_token"],
                     headers={"X-Api-Key": other_shop.key()}).status_code in (401, 403, 404)

    # wrong roles
    finance = staff_with(shop, "FINANCE")
    for method, body in (("GET", None), ("PUT", {"settings": {"monthly_cap": 5}})):
        refused(shop.call(method, "/v1/staff/referral-settings", channel=None, token=finance, json=body), 403)
    refused(shop.call("GET", "/v1/staff/referral-settings", token=member["access_token"]), 401)
    refused(shop.call("GET", "/v1/me/referral", channel=None, token=shop.staff_token()), 401)



def test_a_rewarded_first_order_refunded_in_full_later_takes_the_rewards_back(shop, stack):
    turn_on(shop, points=40)
    erin = login(shop, "ref-erin-" + uuid.uuid4().hex[:8])
    code = my_referral(shop, erin["access_token"])["invite_code"]
    fay = login(shop, "ref-fay-" + uuid.uuid4().hex[:8], code)
    token = fay["access_token"]
    order = paid_order(shop, token, shop.new_sku(stock=5, price=10000))
    complete(shop, token, order["order_id"])
    invitee = rewarded(shop, erin["access_token"])
    assert invitee["reward"]["outcome"] == "PAID"

    # After-sales of the completed order: every line refunded.
    refund = ok(shop.call("POST", f"/v1/orders/{order['order_id']}/refunds", token=token, json={
        "idempotency_key": uuid.uuid4().hex, "reason": "broken",
        "lines": [{"line_id": order["lines"][0]["line_id"], "quantity": "1"}]}))["refund"]
    ok(shop.as_staff("POST", f"/v1/staff/refunds/{refund['refund_id']}:approve", json={}))

    def reversed_entries() -> list[dict]:
        entries = ok(shop.call("GET", "/v1/me/points/history", token=erin["access_token"],
                               params={"page_size": 100})).get("entries", [])
        return [e for e in entries if e.get("kind") == "POINTS_MOVEMENT_REVERSE"
                and e.get("source") == "POINTS_SOURCE_REFERRAL"]

    taken = wait_until(reversed_entries, message="the inviter's points taken back")
    assert [int(e["points"]) for e in taken] == [-40]
    coupons = wait_until(lambda: [c for c in ok(shop.call("GET", "/v1/me/coupons", token=token)).get("coupons", [])
                                  if c["state"] == "MEMBER_COUPON_STATE_REVOKED"], message="the coupon revoked")
    assert [c["source"] for c in coupons] == ["COUPON_SOURCE_REFERRAL"]
    events = wait_until(lambda: asyncio.run(referral_events(stack, "siyu.member.referral.reversed",
                                                            invitee["referral_id"])),
                        message="referral.reversed published")
    assert len(events) == 1
