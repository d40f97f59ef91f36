"""points_mall: coupons for points raced two ways, through the gateway.

- Points: 50 members, each holding points for exactly 3 redemptions, fire 10 redemptions
  each at the same instant (different keys, a per-member limit of 10). Each must end
  with exactly 3 redemptions issued and 0 points left: `overspent` counts members who
  were issued more than their points pay for (or hold negative points).
- Units: 400 members with points to spare press "redeem" once each on an item of 50 units
  at the same instant: exactly 50 are issued (`over_units`, `under_units`).

The checks count what the member service stored once the finishing job has nothing left
(at most SETTLE_S). ratio_to_baseline = answers per second of the bursts / raw conditional
updates per second on one document (every redemption races for the one item counter).
"""
from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import httpx
from pymongo import MongoClient

from bench.baseline import stock_update_baseline
from bench.harness import Bench, Gate, Load, answer, checked, progress, result
from siyu_kit import config

POINTS_MEMBERS, PRESSES, AFFORDABLE, PRICE = 50, 10, 3, 100
UNIT_MEMBERS, UNITS = 400, 50
# A redemption cut short by its deadline while its coupon was CLAIMING waits for the coupon
# claim-recovery job (claims older than a minute, every 30 s), then for the finishing job.
SETTLE_S, SETTLE_POLL_S = 180, 2
PHONES = 200
BASELINE_CONCURRENCY = 16
CLEAR_ANSWERS = {"POINTS_INSUFFICIENT", "POINTS_MALL_SOLD_OUT", "POINTS_MALL_LIMIT_REACHED"}


async def item(http: httpx.AsyncClient, staff: dict, units: int, limit: int) -> str:
    template = checked(await http.post("/v1/staff/coupon-templates", headers=staff, json={
        "name": "积分换券 Bench", "rule": {"kind": "COUPON_KIND_AMOUNT_OFF", "threshold": "10000",
                                         "amount_off": "1000", "scope": "COUPON_SCOPE_ALL"},
        "validity": {"days": 7}, "total": "0", "per_member_limit": 100, "idempotency_key": uuid.uuid4().hex}),
        "CreateCouponTemplate")["template"]["template_id"]
    checked(await http.post(f"/v1/staff/coupon-templates/{template}:setState", headers=staff,
                            json={"state": "COUPON_TEMPLATE_STATE_ACTIVE"}), "SetCouponTemplateState")
    now = datetime.now(timezone.utc)
    return checked(await http.post("/v1/staff/points-mall/coupons", headers=staff, json={
        "template_id": template, "points_price": str(PRICE), "units": str(units), "per_member_limit": limit,
        "starts_at": (now - timedelta(minutes=1)).isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat(),
        "idempotency_key": uuid.uuid4().hex}), "CreatePointsMallCoupon")["item"]["item_id"]


async def credit(http: httpx.AsyncClient, staff: dict, members, points: int) -> None:
    sem = asyncio.Semaphore(16)

    async def one(member_id: str) -> None:
        async with sem:
            checked(await http.post(f"/v1/staff/members/{member_id}/points:adjust", headers=staff, json={
                "points": str(points), "reason": "bench", "idempotency_key": uuid.uuid4().hex}), "AdjustPoints")
    await asyncio.gather(*(one(m.member_id) for m in members))


async def burst(presses: list[tuple[httpx.AsyncClient, str, str]], answers: Counter,
                latencies: list[float]) -> float:
    """Every press parked at one gate, then let go at once; how long the answers took."""
    gate = Gate()
    answered = [0.0]

    async def press(phone: httpx.AsyncClient, token: str, item_id: str) -> None:
        await gate.wait()
        started = time.perf_counter()
        said, _ = await answer(phone, "POST", f"/v1/points-mall/coupons/{item_id}:redeem", "ISSUED",
                               headers={"Authorization": f"Bearer {token}"},
                               json={"idempotency_key": uuid.uuid4().hex})
        answers[said] += 1
        now = time.perf_counter()
        answered[0] = max(answered[0], now - gate.opened)
        if said == "ISSUED" or said in CLEAR_ANSWERS:
            latencies.append((now - started) * 1000)

    await gate.burst([press(*p) for p in presses])
    return answered[0]


def stored(bench: Bench, item_ids: list[str]) -> dict:
    client = MongoClient(bench.stack.mongodb_uri, tz_aware=True)
    try:
        db = client[config.load("member").mongodb_db]
        rows = list(db.points_mall_redemptions.find({"merchant_id": bench.merchant_id, "item_id": {"$in": item_ids}},
                                                    {"member_id": 1, "item_id": 1, "state": 1}))
        items = {d["_id"]: int(d["left"]) for d in db.points_mall_coupons.find({"_id": {"$in": item_ids}})}
        accounts = {d["member_id"]: int(d.get("available") or 0) for d in db.points_accounts.find(
            {"merchant_id": bench.merchant_id}, {"member_id": 1, "available": 1})}
    finally:
        client.close()
    issued = Counter((r["item_id"], r["member_id"]) for r in rows if r["state"] == "ISSUED")
    unfinished = sum(r["state"] in ("TAKEN", "POINTS_SPENT") for r in rows)
    return {"issued": issued, "unfinished": unfinished, "left": items, "available": accounts}


async def run(bench: Bench) -> dict:
    members = await bench.login_members("bench-points-mall", POINTS_MEMBERS + UNIT_MEMBERS, concurrency=32)
    spenders, buyers = members[:POINTS_MEMBERS], members[POINTS_MEMBERS:]
    async with bench.devices(1) as (http,):
        staff = {"Authorization": f"Bearer {await bench.staff_token(http)}", "X-Api-Key": ""}
        roomy = await item(http, staff, POINTS_MEMBERS * PRESSES, PRESSES)
        scarce = await item(http, staff, UNITS, 1)
        await credit(http, staff, spenders, AFFORDABLE * PRICE)
        await credit(http, staff, buyers, 10 * PRICE)
        progress("points_mall", f"{len(members)} members signed in and credited")
    answers: Counter = Counter()
    latencies: list[float] = []
    async with bench.devices(PHONES) as phones:
        first = await burst([(phones[n % PHONES], m.token, roomy)
                             for n, m in enumerate(m for m in spenders for _ in range(PRESSES))], answers, latencies)
        second = await burst([(phones[n % PHONES], m.token, scarce) for n, m in enumerate(buyers)], answers,
                             latencies)
    answered_s = first + second
    progress("points_mall", f"answers: {dict(answers)}")
    started = time.monotonic()
    db = await asyncio.to_thread(stored, bench, [roomy, scarce])
    while db["unfinished"] and time.monotonic() - started < SETTLE_S:
        await asyncio.sleep(SETTLE_POLL_S)
        db = await asyncio.to_thread(stored, bench, [roomy, scarce])
    per_spender = [db["issued"].get((roomy, m.member_id), 0) for m in spenders]
    overspent = sum(1 for n in per_spender if n > AFFORDABLE) + sum(
        1 for m in spenders if db["available"].get(m.member_id, 0) < 0)
    scarce_issued = sum(n for (i, _), n in db["issued"].items() if i == scarce)
    baseline = await stock_update_baseline(bench, BASELINE_CONCURRENCY, 1)
    load = Load(answered_s, sorted(latencies),
                Counter({r: n for r, n in answers.items() if r != "ISSUED" and r not in CLEAR_ANSWERS}))
    return result("points_mall", load, baseline, PHONES,
                  points_members=POINTS_MEMBERS, presses_each=PRESSES, affordable_each=AFFORDABLE,
                  redeemed=sum(per_spender), exactly_affordable=sum(1 for n in per_spender if n == AFFORDABLE),
                  overspent=overspent, unit_members=UNIT_MEMBERS, units=UNITS, units_issued=scarce_issued,
                  over_units=max(0, scarce_issued - UNITS), under_units=max(0, UNITS - scarce_issued),
                  units_left=db["left"].get(scarce, 0), unfinished=db["unfinished"], answers=dict(answers))
