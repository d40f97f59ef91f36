"""bargain: 200 signed-in members, each on their own connection, press "help" on one
bargain needing 10 helpers at the same instant, through the gateway. The run must end with
exactly 10 cuts taken and the price exactly at the floor, read back from the service
(GetBargain as the starter): every other helper is told BARGAIN_FINISHED.

ratio_to_baseline = answers per second of the burst / raw conditional updates per second
on one document (every help races for the one bargain's version).
"""
from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

from bench.baseline import stock_update_baseline
from bench.harness import Bench, Gate, Load, answer, checked, progress, result, send

HELPERS = 200
NEEDED = 10
START_PRICE = 5_000
FLOOR_PRICE = 500
BASELINE_CONCURRENCY = 16
# Answers that are the race working as designed; anything else is an error.
CLEAR_ANSWERS = {"BARGAIN_FINISHED"}


def _iso(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


async def prepare(http, bench: Bench, starter_token: str) -> tuple[str, str]:
    """A bargain activity on a checkout SKU and the starter's bargain of it."""
    staff = {"Authorization": f"Bearer {await bench.staff_token(http)}", "X-Api-Key": ""}
    now = datetime.now(timezone.utc)
    activity = checked(await http.post("/v1/staff/bargain-activities", headers=staff, json={
        "idempotency_key": uuid.uuid4().hex, "activity": {
            "sku_id": bench.shop["checkout_skus"][0], "title": "砍价基准 Bench Bargain",
            "start_price": {"amount": str(START_PRICE), "currency": "CNY"},
            "floor_price": {"amount": str(FLOOR_PRICE), "currency": "CNY"}, "helpers_needed": NEEDED,
            "starts_at": _iso(now - timedelta(minutes=1)), "ends_at": _iso(now + timedelta(days=1)),
            "units": "10", "helps_per_member": 1, "helps_per_day": 3}}), "CreateBargainActivity")["activity"]
    started = checked(await http.post(f"/v1/bargain-activities/{activity['activity_id']}:start",
                                      headers={"Authorization": f"Bearer {starter_token}"}, json={}), "StartBargain")
    return activity["activity_id"], started["bargain"]["bargain_id"]


async def run(bench: Bench) -> dict:
    started = time.perf_counter()
    members = await bench.login_members("bench-bargain", HELPERS + 1, concurrency=64)
    starter, helpers = members[0], members[1:]
    progress("bargain", f"{len(members)} members signed in ({time.perf_counter() - started:.1f}s)")
    answers: Counter = Counter()
    latencies: list[float] = []
    gate = Gate()
    answered_s = 0.0
    async with bench.devices(len(helpers) + 1) as devices:
        desk = devices[0]
        activity_id, bargain_id = await prepare(desk, bench, starter.token)
        # Open every connection first, as the bargain page's load would.
        for m, phone in zip(helpers, devices[1:]):
            await send(phone, "GET", f"/v1/bargains/{bargain_id}", headers={"Authorization": f"Bearer {m.token}"})

        async def press(token: str, phone) -> None:
            nonlocal answered_s
            await gate.wait()
            t0 = time.perf_counter()
            said, _ = await answer(phone, "POST", f"/v1/bargains/{bargain_id}:help", "HELPED",
                                   headers={"Authorization": f"Bearer {token}"}, json={"nickname": "帮砍"})
            now = time.perf_counter()
            answered_s = max(answered_s, now - gate.opened)
            answers[said] += 1
            if said == "HELPED" or said in CLEAR_ANSWERS:
                latencies.append((now - t0) * 1000)

        await gate.burst([press(m.token, phone) for m, phone in zip(helpers, devices[1:])])
        progress("bargain", f"answers: {dict(answers)}")
        page = checked(await desk.get(f"/v1/bargains/{bargain_id}",
                                      headers={"Authorization": f"Bearer {starter.token}"}), "GetBargain")["bargain"]
    baseline = await stock_update_baseline(bench, BASELINE_CONCURRENCY, 1)
    load = Load(answered_s, latencies, Counter({r: n for r, n in answers.items()
                                                if r != "HELPED" and r not in CLEAR_ANSWERS}))
    cuts = [int(h["cut"]["amount"]) for h in page.get("helps", [])]
    return result(
        "bargain", load, baseline, len(helpers),
        helpers=len(helpers), needed=NEEDED, accepted_cuts=len(cuts), helps_answered=answers["HELPED"],
        final_price=int(page["price"]["amount"]), floor=int(page["floor_price"]["amount"]),
        start_price=int(page["start_price"]["amount"]), cuts_sum=sum(cuts), state=page["state"],
        activity_id=activity_id, bargain_id=bargain_id, answers=dict(answers),
        answered_ms=round(answered_s * 1000, 1))
