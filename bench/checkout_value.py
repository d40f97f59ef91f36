"""checkout_value: the checkout scenario with a coupon and points — members place a
one-line order using one of their coupons (满59减5) and 100 points, pay it and complete the
sandbox payment, all through the gateway; then the same without coupon and points, so
the JSON gives the database commands per paid order with and without them side by side
(`db_round_trips_per_order_total` and `without_member_value`). The member service's
UseCoupon and SpendHeldPoints, which the order service's consumers call once an order is
paid, are counted as member RPCs of the run.

Each member holds COUPONS_PER_MEMBER coupons and enough points before the clock starts; a
member who has used every coupon gets NO_COUPON_LEFT (an error of the run, not of the
suite). ratio_to_baseline as for checkout: paid orders per second / raw conditional
stock updates per second.
"""
from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

import httpx

from bench.baseline import stock_update_baseline
from bench.checkout import checkout_loop, round_trips
from bench.harness import Bench, Member, Rejected, checked, percentile, progress, result, send

CONCURRENCY = 16
MEMBERS = 32
COUPONS_PER_MEMBER = 40
POINTS_PER_ORDER = 100
DURATION_S = 12.0
WARMUP_S = 1.0
PLAIN_DURATION_S = 8.0


async def claim(phone: httpx.AsyncClient, member: Member, template_id: str) -> httpx.Response:
    """One coupon for the member. The setup is not what is measured: a claim the gateway gave
    up on (the suite still busy after the previous scenario) is asked again with the same
    key, which answers the coupon the first call made, never a second one."""
    body = {"template_id": template_id, "idempotency_key": uuid.uuid4().hex}
    for _ in range(5):
        resp = await send(phone, "POST", "/v1/me/coupons", headers={"Authorization": f"Bearer {member.token}"},
                          json=body)
        if resp.status_code not in (503, 504):
            break
    return resp


async def prepare(bench: Bench, members: list[Member]) -> dict[str, list[str]]:
    """An active 满59减5 template; every member gets points and COUPONS_PER_MEMBER coupons."""
    async with bench.devices(CONCURRENCY) as devices:
        http = devices[0]
        staff = {"Authorization": f"Bearer {await bench.staff_token(http)}", "X-Api-Key": ""}
        made = (checked(await http.post("/v1/staff/coupon-templates", headers=staff, json={
            "name": "满59减5 Bench", "rule": {"kind": "COUPON_KIND_AMOUNT_OFF", "threshold": "5900",
                                             "amount_off": "500", "scope": "COUPON_SCOPE_ALL"},
            "validity": {"days": 7}, "total": "0", "per_member_limit": COUPONS_PER_MEMBER,
            "idempotency_key": uuid.uuid4().hex}),
            "CreateCouponTemplate"))["template"]
        checked(await http.post(f"/v1/staff/coupon-templates/{made['template_id']}:setState",
                                      headers=staff, json={"state": "COUPON_TEMPLATE_STATE_ACTIVE"}),
                      "SetCouponTemplateState")
        coupons: dict[str, list[str]] = defaultdict(list)
        work = iter([(m, n) for m in members for n in range(COUPONS_PER_MEMBER)])
        credited: set[str] = set()

        async def worker(phone: httpx.AsyncClient) -> None:
            for member, _ in work:
                if member.member_id not in credited:
                    credited.add(member.member_id)
                    checked(await send(phone, "POST", f"/v1/staff/members/{member.member_id}/points:adjust",
                                             headers=staff, json={
                                                 "points": str(POINTS_PER_ORDER * COUPONS_PER_MEMBER * 2),
                                                 "reason": "bench", "idempotency_key": uuid.uuid4().hex}),
                                  "AdjustPoints")
                claimed = checked(await claim(phone, member, made["template_id"]), "ClaimCoupon")
                coupons[member.member_id].append(claimed["coupon"]["coupon_id"])

        await asyncio.gather(*(worker(d) for d in devices))
    return coupons


async def loop(bench: Bench, members: list[Member], skus: list[str], coupons: dict[str, list[str]] | None,
               duration_s: float):
    def coupon_and_points(member: Member) -> dict:
        if coupons is None:
            return {}
        left = coupons[member.member_id]
        if not left:
            raise Rejected("NO_COUPON_LEFT")
        return {"coupon_id": left.pop(), "points": str(POINTS_PER_ORDER)}

    return await checkout_loop(bench, members, skus, duration_s, WARMUP_S, CONCURRENCY, coupon_and_points)


async def run(bench: Bench) -> dict:
    skus = bench.shop["checkout_skus"]
    members = await bench.login_members("bench-checkout-value", MEMBERS)
    progress("checkout_value", f"{MEMBERS} members claim {COUPONS_PER_MEMBER} coupons each")
    coupons = await prepare(bench, members)
    # Without first: the paid orders' consumers (UseCoupon, SpendHeldPoints) run on after a
    # loop ends and would be counted in the next one.
    plain, plain_spent, _ = await loop(bench, members, skus, None, PLAIN_DURATION_S)
    load, spent, step_ms = await loop(bench, members, skus, coupons, DURATION_S)
    paid, plain_paid = len(load.latencies_ms), len(plain.latencies_ms)
    baseline = await stock_update_baseline(bench, CONCURRENCY, len(skus))
    return result("checkout_value", load, baseline, CONCURRENCY, members=len(members), skus=len(skus),
                  unit=f"one paid order = place (one coupon, {POINTS_PER_ORDER} points) + pay + sandbox complete",
                  steps={step: {f"p{p}_ms": round(percentile(sorted(ms), p), 2) for p in (50, 95, 99)}
                         for step, ms in step_ms.items()},
                  **round_trips(spent, paid),
                  without_member_value={"requests": plain_paid, "throughput_per_s": plain.summary()[
                      "throughput_per_s"], **round_trips(plain_spent, plain_paid)})
