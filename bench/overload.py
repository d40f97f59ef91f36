"""overload: 4,000 presses of "buy" at the same instant on a 100-unit flash sale, through
the gateway, on whatever cores the machine has: 2,000 signed-in members, each pressing on
two connections at once (so the per-member limit is raced too).

Every press must get an answer within its deadline: an order, a clear refusal (SOLD_OUT,
LIMIT_REACHED), or 503 with Retry-After (the gateway or a service at its bound, or too
little deadline left to start). A press with no answer by its deadline `hung`; any other
answer (a 500, a 504, a reset connection) is an error. Nothing is sold past the pool.

ratio_to_baseline = answers per second of the burst / raw conditional updates per second
on one document, as for flash_sale.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import datetime, timezone


from bench.baseline import stock_update_baseline
from bench.flash_sale import BASELINE_CONCURRENCY, UNITS, Buyer, open_page, parse_time, prepare, units
from bench.harness import Bench, Gate, Load, error_reason, percentile, progress, result, send
from bench.rawhttp import RawPhone, RawResponse, connect_all

MEMBERS = 2000
PRESSES_PER_MEMBER = 2
# What a phone waits for an answer before it gives up on the press (the gateway's own
# deadline for the service call is 10 s).
PRESS_DEADLINE_S = 15.0
CLEAR_REFUSALS = {"SOLD_OUT", "LIMIT_REACHED"}


def classify(resp: RawResponse) -> str:
    if resp.status_code == 200:
        return "ORDER"
    reason = error_reason(resp)
    if reason in CLEAR_REFUSALS:
        return reason
    if resp.status_code == 503 and resp.headers.get("retry-after"):
        return "OVERLOADED_503"
    return f"ERROR_{resp.status_code}_{reason}"


async def run(bench: Bench) -> dict:
    started = time.perf_counter()
    members = await bench.login_members("bench-overload", MEMBERS, concurrency=64)
    progress("overload", f"{len(members)} members signed in ({time.perf_counter() - started:.1f}s)")
    async with bench.devices(len(members) * PRESSES_PER_MEMBER + 1) as devices:
        desk, phones = devices[0], devices[1:]
        buyers = [Buyer(members[i // PRESSES_PER_MEMBER], phone) for i, phone in enumerate(phones)]
        sale = await prepare(desk, bench)
        sale_id = sale["flash_sale_id"]
        await open_page(buyers, sale_id)
        # The presses go out on connections of their own, opened before the burst (a phone
        # that loaded the page is connected), through a client light enough not to be the
        # bottleneck itself (bench/rawhttp.py).
        key = bench.shop["api_keys"]["H5"]
        raw = await connect_all([RawPhone("127.0.0.1", bench.stack.ports["gateway"], {"X-Api-Key": key, **b.auth})
                                 for b in buyers])
        wait_s = (parse_time(sale["starts_at"]) - datetime.now(timezone.utc)).total_seconds()
        if wait_s > 0:
            await asyncio.sleep(wait_s)

        gate = Gate()
        answers: Counter = Counter()
        latencies: list[float] = []
        detail: Counter = Counter()

        async def press(phone: RawPhone) -> None:
            await gate.wait()
            try:
                resp = await phone.post(f"/v1/flash-sales/{sale_id}:buy", timeout=PRESS_DEADLINE_S,
                                        json_body={"idempotency_key": uuid.uuid4().hex, "quantity": "1"})
            except TimeoutError:
                answers["HUNG"] += 1
                return
            except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                answers["ERROR"] += 1
                detail[type(error).__name__] += 1
                return
            kind = classify(resp)
            latencies.append((time.perf_counter() - gate.opened) * 1000)
            if kind.startswith("ERROR_"):
                answers["ERROR"] += 1
                detail[kind] += 1
            else:
                answers[kind] += 1

        await gate.burst([press(p) for p in raw])
        await asyncio.gather(*(p.close() for p in raw))
        answered_s = time.perf_counter() - gate.opened
        final = (await send(desk, "GET", f"/v1/flash-sales/{sale_id}")).json()["flash_sale"]

    progress("overload", f"answers {dict(answers)} in {answered_s:.1f}s; errors {dict(detail)}")
    ordered = sorted(latencies)
    failures = Counter(detail)
    if answers["HUNG"]:
        failures["HUNG"] = answers["HUNG"]
    load = Load(answered_s, ordered, failures)
    baseline = await stock_update_baseline(bench, BASELINE_CONCURRENCY, 1)
    taken = units(final, "sold_units") + units(final, "reserved_units")
    return result(
        "overload", load, baseline, len(buyers),
        presses=len(buyers), members=len(members), units=UNITS, press_deadline_s=PRESS_DEADLINE_S,
        answered=len(ordered), orders=answers["ORDER"], sold_out=answers["SOLD_OUT"],
        limit_reached=answers["LIMIT_REACHED"], overloaded_503=answers["OVERLOADED_503"],
        hung=answers["HUNG"], errors=answers["ERROR"], error_detail=dict(detail),
        # p50/p95/p99 are over every answer, from the common press instant.
        answered_p50_ms=round(percentile(ordered, 50), 1), answered_p95_ms=round(percentile(ordered, 95), 1),
        answered_p99_ms=round(percentile(ordered, 99), 1),
        oversold=max(0, taken - UNITS) + max(0, answers["ORDER"] - UNITS),
        final_pool={k: units(final, k) for k in ("total_units", "available_units", "reserved_units", "sold_units")})

