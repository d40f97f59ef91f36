"""coupon_grab: 2,000 signed-in members, each on their own connection, press "claim" on a
100-coupon template (one per member) at the same instant, through the gateway. Every
member presses twice in a row with two different keys, so the per-member limit is raced
as well as the total. The run must end with exactly 100 coupons claimed: the template's
counter and the stored coupons say 100, nobody holds more than one, and no claim is left
half way. A press the gateway gave up on (its deadline) may still have claimed its coupon,
or may have left a CLAIMING coupon or an unsettled unit behind; the check waits (at most
SETTLE_S) for the member service's claim-recovery job to finish or undo those, then counts
what is stored: `claimed` is the coupons members hold, `claims_answered` the presses that
were told so.

ratio_to_baseline = answers per second of the burst / raw conditional updates per second
on one document (every claim races for the one template counter).
"""
from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx
from pymongo import MongoClient

from bench.baseline import stock_update_baseline
from bench.harness import Bench, Gate, Load, answer, checked, progress, result, send
from siyu_kit import config

CLAIMERS = 2000
COUPONS = 100
PER_MEMBER_LIMIT = 1
PRESSES = 2  # each member presses twice, with a new key each time
# The claim-recovery job runs every 30 s and repairs claims older than a minute.
SETTLE_S = 150
SETTLE_POLL_S = 2
BASELINE_CONCURRENCY = 16
# Answers that are the grab working as designed; anything else is an error.
CLEAR_ANSWERS = {"COUPON_SOLD_OUT", "COUPON_LIMIT_REACHED"}


@dataclass
class Burst:
    answers: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    claimed_by: Counter = field(default_factory=Counter)
    answered_s: float = 0.0

    def load(self) -> Load:
        return Load(self.answered_s, self.latencies_ms,
                    Counter({r: n for r, n in self.answers.items() if r != "CLAIMED" and r not in CLEAR_ANSWERS}))


async def prepare(http: httpx.AsyncClient, bench: Bench) -> str:
    """An active template of COUPONS coupons, one per member: 满100减10 for 7 days."""
    staff = {"Authorization": f"Bearer {await bench.staff_token(http)}", "X-Api-Key": ""}
    made = checked(await http.post("/v1/staff/coupon-templates", headers=staff, json={
        "name": "抢券 Bench Coupon", "rule": {"kind": "COUPON_KIND_AMOUNT_OFF", "threshold": "10000",
                                             "amount_off": "1000", "scope": "COUPON_SCOPE_ALL"},
        "validity": {"days": 7}, "total": str(COUPONS), "per_member_limit": PER_MEMBER_LIMIT,
        "idempotency_key": uuid.uuid4().hex}),
        "CreateCouponTemplate")["template"]
    checked(await http.post(f"/v1/staff/coupon-templates/{made['template_id']}:setState", headers=staff,
                            json={"state": "COUPON_TEMPLATE_STATE_ACTIVE"}), "SetCouponTemplateState")
    return made["template_id"]


async def grab(phones: list[tuple[str, str, httpx.AsyncClient]], template_id: str) -> Burst:
    burst = Burst()
    gate = Gate()

    async def press(member_id: str, token: str, phone: httpx.AsyncClient) -> None:
        await gate.wait()
        for _ in range(PRESSES):
            started = time.perf_counter()
            said, _ = await answer(phone, "POST", "/v1/me/coupons", "CLAIMED",
                                   headers={"Authorization": f"Bearer {token}"},
                                   json={"template_id": template_id, "idempotency_key": uuid.uuid4().hex})
            now = time.perf_counter()
            burst.answered_s = max(burst.answered_s, now - gate.opened)
            burst.answers[said] += 1
            if said == "CLAIMED" or said in CLEAR_ANSWERS:
                burst.latencies_ms.append((now - started) * 1000)
            if said == "CLAIMED":
                burst.claimed_by[member_id] += 1

    await gate.burst([press(*p) for p in phones])
    return burst


def stored(bench: Bench, template_id: str) -> dict:
    """What the member service's database holds for the template."""
    client = MongoClient(bench.stack.mongodb_uri, tz_aware=True)
    try:
        db = client[config.load("member").mongodb_db]
        template = db.coupon_templates.find_one({"_id": template_id, "merchant_id": bench.merchant_id})
        coupons = list(db.member_coupons.find({"merchant_id": bench.merchant_id, "template_id": template_id},
                                              {"member_id": 1, "state": 1}))
    finally:
        client.close()
    held = Counter(c["member_id"] for c in coupons if c["state"] != "CLAIMING")
    return {"issued": int(template.get("issued") or 0), "claiming_entries": int(template.get("claiming_count") or 0),
            "coupons": sum(held.values()), "claiming_coupons": sum(c["state"] == "CLAIMING" for c in coupons),
            "members_over_limit": sum(1 for n in held.values() if n > PER_MEMBER_LIMIT)}


async def run(bench: Bench) -> dict:
    started = time.perf_counter()
    members = await bench.login_members("bench-coupon", CLAIMERS, concurrency=64)
    progress("coupon_grab", f"{len(members)} members signed in ({time.perf_counter() - started:.1f}s)")
    async with bench.devices(len(members) + 1) as devices:
        desk = devices[0]
        template_id = await prepare(desk, bench)
        # Open every connection first, as the coupon page's load would.
        await asyncio.gather(*(send(phone, "GET", "/v1/me/coupons", headers={"Authorization": f"Bearer {m.token}"})
                               for m, phone in zip(members, devices[1:])))
        burst = await grab([(m.member_id, m.token, phone) for m, phone in zip(members, devices[1:])], template_id)
    progress("coupon_grab", f"answers: {dict(burst.answers)}")
    settle_started = time.monotonic()
    db = await asyncio.to_thread(stored, bench, template_id)
    while (db["claiming_coupons"] or db["claiming_entries"]) and time.monotonic() - settle_started < SETTLE_S:
        await asyncio.sleep(SETTLE_POLL_S)
        db = await asyncio.to_thread(stored, bench, template_id)
    settled_s = time.monotonic() - settle_started
    answered = sum(burst.claimed_by.values())
    claimed = db["coupons"]
    over_limit = max(db["members_over_limit"], sum(1 for n in burst.claimed_by.values() if n > PER_MEMBER_LIMIT))
    baseline = await stock_update_baseline(bench, BASELINE_CONCURRENCY, 1)
    return result(
        "coupon_grab", burst.load(), baseline, len(members),
        claimers=len(members), coupons=COUPONS, per_member_limit=PER_MEMBER_LIMIT, presses=sum(burst.answers.values()),
        claimed=claimed, claims_answered=answered, settled_ms=round(settled_s * 1000, 1),
        over_issued=max(0, max(answered, db["issued"], db["coupons"]) - COUPONS),
        over_limit=over_limit, under_issued=max(0, COUPONS - db["coupons"]),
        stuck_claims=db["claiming_coupons"] + db["claiming_entries"], stored=db,
        answers=dict(burst.answers), answered_ms=round(burst.answered_s * 1000, 1))
