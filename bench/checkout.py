"""checkout: members place a one-line order, pay it and complete the sandbox payment,
all through the gateway, against the embedded server's raw conditional stock update.

ratio_to_baseline = paid orders per second / raw conditional updates per second: how
much of the database's rate for the one write that must be serialised is left once a
whole checkout (three HTTP calls, five services' worth of work) is built around it.
"""
from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from typing import Callable

import httpx

from bench.baseline import stock_update_baseline
from bench.harness import Bench, Load, Member, Rejected, closed_loop, error_reason, percentile, result, send

CONCURRENCY = 16
MEMBERS = 64
DURATION_S = 20.0
WARMUP_S = 2.0
STEPS = ("place", "pay", "complete")


async def post(http: httpx.AsyncClient, member: Member, path: str, body: dict) -> dict:
    resp = await send(http, "POST", path, json=body, headers={"Authorization": f"Bearer {member.token}"})
    if resp.status_code != 200:
        raise Rejected(error_reason(resp), resp.text[:200])
    return resp.json()


async def checkout_loop(bench: Bench, members: list[Member], skus: list[str], duration_s: float,
                        warmup_s: float = WARMUP_S, concurrency: int = CONCURRENCY,
                        extra: Callable[[Member], dict] | None = None) -> tuple[Load, Counter, dict[str, list[float]]]:
    """A closed loop of checkouts (place, pay, sandbox complete) after a warm-up: the load,
    the database commands it spent and each step's latencies. `extra(member)` adds fields
    to each order (a coupon, points); raising Rejected there counts as an error of the run."""
    step_ms: dict[str, list[float]] = defaultdict(list)
    async with bench.devices(concurrency) as devices:
        async def checkout(i: int) -> None:
            http, member = devices[i % concurrency], members[i % len(members)]
            ask = extra(member) if extra is not None else {}
            marks = [time.perf_counter()]
            order = (await post(http, member, "/v1/orders", {
                "idempotency_key": uuid.uuid4().hex,
                "lines": [{"sku_id": skus[i % len(skus)], "quantity": 1}], **ask}))["order"]
            marks.append(time.perf_counter())
            payment = (await post(http, member, f"/v1/orders/{order['order_id']}:pay",
                                  {"idempotency_key": uuid.uuid4().hex}))["payment"]
            marks.append(time.perf_counter())
            done = await post(http, member, f"/v1/sandbox/payments/{payment['payment_id']}:complete", {})
            marks.append(time.perf_counter())
            if done["payment"]["state"] != "PAYMENT_STATE_SUCCEEDED":
                raise Rejected(done["payment"]["state"])
            for step, start, end in zip(STEPS, marks, marks[1:]):
                step_ms[step].append((end - start) * 1000)

        await closed_loop(checkout, concurrency, warmup_s)
        step_ms.clear()
        before = bench.db_commands()
        load = await closed_loop(checkout, concurrency, duration_s)
        spent = bench.db_commands() - before
    return load, spent, step_ms


async def run(bench: Bench) -> dict:
    skus = bench.shop["checkout_skus"]
    members = await bench.login_members("bench-checkout", MEMBERS)
    load, spent, step_ms = await checkout_loop(bench, members, skus, DURATION_S)
    paid = len(load.latencies_ms)
    baseline = await stock_update_baseline(bench, CONCURRENCY, len(skus))
    return result("checkout", load, baseline, CONCURRENCY, members=len(members), skus=len(skus),
                  unit="one paid order = place + pay + sandbox complete",
                  steps={step: {f"p{p}_ms": round(percentile(sorted(ms), p), 2) for p in (50, 95, 99)}
                         for step, ms in step_ms.items()},
                  **round_trips(spent, paid))


def round_trips(spent: Counter, orders: int) -> dict:
    """Database commands per paid order: the synchronous path by service and by RPC, and
    the background work (relay, consumers, jobs, including their idle polling) by service."""
    per_service, per_rpc, background = Counter(), {}, Counter()
    for (service, rpc), count in sorted(spent.items()):
        if rpc == "background":
            background[service] += count
        else:
            per_service[service] += count
            per_rpc[f"{service}.{rpc}"] = round(count / orders, 2)
    return {
        "db_round_trips_per_order": {s: round(c / orders, 2) for s, c in sorted(per_service.items())},
        "db_round_trips_per_order_total": round(sum(per_service.values()) / orders, 2),
        "db_round_trips_per_order_by_rpc": per_rpc,
        "db_background_commands_per_order": {s: round(c / orders, 2) for s, c in sorted(background.items())},
    } if orders else {}
