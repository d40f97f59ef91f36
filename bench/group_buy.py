"""group_buy: 100 leaders open groups of 3 (pay, so each group is OPEN), then 1,000
signed-in members join at the same instant (over gRPC, as the gateway calls the order
service) and pay straight away: 990 of them into 90 groups (11 for 2 slots each), one
each into the last 10 groups, which then expire (the activity ends a while after the
burst, capping every group's deadline) and fail. Every formed group must have exactly 3
PAID orders; every other paid order must be refunded exactly once with its ledger
balanced.

The figures are read from the order service's own records once everything settled: the
groups as stored (`overfilled`: more members than the size, or a formed group whose PAID
orders are not its size), the payments (`refunds`: REFUNDED payments of the activity's
orders) and the payment ledger (`double_refunds`: a payment with more than one return
entry, an order refunded beyond what it paid, or a refunded payment whose order is PAID;
`unbalanced`: a cancelled order whose ledger does not come back to zero).

ratio_to_baseline = joins answered per second of the burst / raw conditional updates per
second on one document.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import grpc
import httpx
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from pymongo import MongoClient
from siyu.order.v1 import order_pb2, order_pb2_grpc

from bench.baseline import stock_update_baseline
from bench.harness import Bench, Gate, Load, Member, checked, progress, result, send
from siyu_kit import config

GROUPS = 100
SIZE = 3
JOINERS = 1000
LONELY = 10  # groups that get one joiner only and expire
# The activity (and so every group's deadline) ends this long after the leaders opened;
# long enough for the burst to be answered and paid on two cores.
WINDOW_S = 420
CALL_TIMEOUT_S = 300
# Purchases under way at once: all 1,000 press together and queue here, as behind a
# gateway's workers. A purchase that wins reserves, prices and writes an order (unlike a
# flash sale, where most presses lose at once), and 1,000 of them in flight on two cores
# leave the catalog's reserve calls past their deadline.
IN_FLIGHT = 48
SETTLE_S = 90
BASELINE_CONCURRENCY = 16


def grpc_reason(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""


def rfc3339(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


async def pay(http: httpx.AsyncClient, auth: dict, order_id: str) -> bool:
    resp = await send(http, "POST", f"/v1/orders/{order_id}:pay", headers=auth,
                      json={"idempotency_key": uuid.uuid4().hex})
    if resp.status_code != 200:
        return False
    done = await send(http, "POST", f"/v1/sandbox/payments/{resp.json()['payment']['payment_id']}:complete",
                      headers=auth, json={})
    return done.status_code == 200


async def prepare(http: httpx.AsyncClient, bench: Bench) -> dict:
    staff = {"Authorization": f"Bearer {await bench.staff_token(http)}", "X-Api-Key": ""}
    product = checked(await http.post("/v1/staff/products", headers=staff, json={
        "code": f"bench-gb-{uuid.uuid4().hex[:8]}", "title": "拼团基准 Group Buy Tea", "status": "PRODUCT_STATUS_ON_SHELF",
        "skus": [{"code": f"bench-gb-{uuid.uuid4().hex[:8]}", "list_price": {"amount": "9900", "currency": "CNY"},
                  "initial_stock": str(GROUPS + JOINERS + 100)}]}), "UpsertProduct")["product"]
    now = datetime.now(timezone.utc)
    return checked(await http.post("/v1/staff/group-buys", headers=staff, json={
        "idempotency_key": uuid.uuid4().hex, "activity": {
            "title": "三人团 Bench", "product_id": product["product_id"], "group_size": SIZE,
            "skus": [{"sku_id": product["skus"][0]["sku_id"], "group_price": {"amount": "5900", "currency": "CNY"},
                      "units": str(GROUPS + JOINERS)}],
            "starts_at": rfc3339(now - timedelta(seconds=1)), "ends_at": rfc3339(now + timedelta(seconds=WINDOW_S)),
            "per_member_limit": 1}}), "CreateGroupBuyActivity")["activity"]


def figures(bench: Bench, activity_id: str) -> dict:
    """What the order service stored: groups, orders, payments and ledger entries of the activity."""
    client = MongoClient(bench.stack.mongodb_uri, tz_aware=True)
    try:
        db = client[config.load("order").mongodb_db]
        mid = bench.merchant_id
        groups = list(db["group_buy_groups"].find({"merchant_id": mid, "activity_id": activity_id}))
        orders = {o["_id"]: o for o in db["orders"].find({"merchant_id": mid, "activity.activity_id": activity_id})}
        payments = list(db["payments"].find({"merchant_id": mid, "order_id": {"$in": list(orders)}}))
        entries = list(db["ledger_entries"].find({"merchant_id": mid, "order_id": {"$in": list(orders)}}))
    finally:
        client.close()
    states = Counter(g["state"] for g in groups)
    overfilled = 0
    for g in groups:
        members = g.get("members") or {}
        paid_orders = sum(1 for m in members.values() if orders.get(m["order_id"], {}).get("state") == "PAID")
        if g["paid"] > g["size"] or len(members) > g["size"] or (g["state"] == "FORMED" and not g.get("placeholders")
                                                                  and paid_orders != g["size"]):
            overfilled += 1
    returns = Counter(e.get("payment_id") for e in entries if e["kind"] == "STOCK_REFUND")
    refunded_payments = [p for p in payments if p["state"] == "REFUNDED"]
    double = sum(1 for n in returns.values() if n > 1)
    double += sum(1 for o in orders.values() if int(o.get("refunded_amount") or 0) > int(o["payable"]))
    double += sum(1 for p in refunded_payments if orders[p["order_id"]]["state"] == "PAID")
    by_order: dict[str, int] = defaultdict(int)
    for e in entries:
        sign = 1 if e["kind"] == "ORDER_PAYMENT" else -1 if e["kind"] == "STOCK_REFUND" else 0
        by_order[e["order_id"]] += sign * int(e["amount"])
    cancelled = [o for o in orders.values() if o["state"] == "CANCELLED" and o.get("payment_id")]
    unbalanced = sum(1 for o in cancelled if by_order[o["_id"]] != 0)
    return {"groups": len(groups), "formed": states["FORMED"], "failed": states["FAILED"], "open": states["OPEN"],
            "overfilled": overfilled, "refunds": len(refunded_payments), "double_refunds": double,
            "unbalanced": unbalanced, "order_states": dict(Counter(o["state"] for o in orders.values())),
            "cancel_reasons": dict(Counter(o.get("cancel_reason") for o in cancelled))}


async def run(bench: Bench) -> dict:
    started = time.perf_counter()
    members = await bench.login_members("bench-gb", GROUPS + JOINERS, concurrency=64)
    progress("group_buy", f"{len(members)} members signed in ({time.perf_counter() - started:.1f}s)")
    leaders, joiners = members[:GROUPS], members[GROUPS:]
    async with bench.devices(GROUPS + 1) as devices:
        desk, phones = devices[0], devices[1:]
        activity = await prepare(desk, bench)
        aid, sku = activity["activity_id"], activity["skus"][0]["sku_id"]

        async def open_group(m: Member, http: httpx.AsyncClient) -> str:
            auth = {"Authorization": f"Bearer {m.token}"}
            order = checked(await send(http, "POST", f"/v1/group-buys/{aid}:buy", headers=auth, json={
                "idempotency_key": uuid.uuid4().hex, "sku_id": sku}), "PlaceGroupBuyOrder")["order"]
            if not await pay(http, auth, order["order_id"]):
                raise RuntimeError("a leader's payment failed")
            return order["activity"]["group_id"]

        t0 = time.perf_counter()
        group_ids = list(await asyncio.gather(*(open_group(m, p) for m, p in zip(leaders, phones))))
        # Each group is OPEN once its leader's payment took the slot (the order.grouping consumer).
        while True:
            seen = await asyncio.gather(*(send(phones[i], "GET", f"/v1/groups/{g}",
                                               headers={"Authorization": f"Bearer {leaders[i].token}"})
                                          for i, g in enumerate(group_ids)))
            if all(r.status_code == 200 for r in seen) or time.perf_counter() - t0 > 60:
                break
            await asyncio.sleep(0.5)
        opened_s = time.perf_counter() - t0
        progress("group_buy", f"{GROUPS} groups opened ({opened_s:.1f}s)")

        targets = [group_ids[GROUPS - LONELY + i] for i in range(LONELY)] + \
                  [group_ids[i % (GROUPS - LONELY)] for i in range(JOINERS - LONELY)]
        answers: Counter = Counter()
        latencies: list[float] = []
        gate = Gate()
        answered = [0.0]

        # Straight to the order service over gRPC (as the gateway calls it), with a deadline
        # long enough for 1,000 full purchases queued on two cores: every press is a
        # winner that reserves, prices and writes an order, unlike a flash sale's losers.
        async with bench.grpc_channel("order") as ch:
            stub = order_pb2_grpc.OrderServiceStub(ch)

            in_flight = asyncio.Semaphore(IN_FLIGHT)

            async def join(m: Member, group_id: str) -> None:
                await gate.wait()
                async with in_flight:
                    # Signed when the call goes out: an assertion lives 30 s, the queue may be longer.
                    await purchase(m, group_id, bench.metadata(m.member_id))

            async def purchase(m: Member, group_id: str, md) -> None:
                try:
                    placed = await stub.PlaceGroupBuyOrder(order_pb2.PlaceGroupBuyOrderRequest(
                        activity_id=aid, sku_id=sku, idempotency_key=uuid.uuid4().hex, group_id=group_id),
                        metadata=md, timeout=CALL_TIMEOUT_S)
                    reason = "ORDER"
                except grpc.aio.AioRpcError as error:
                    placed, reason = None, grpc_reason(error) or error.code().name
                answered[0] = max(answered[0], time.perf_counter() - gate.opened)
                answers[reason] += 1
                if reason in ("ORDER", "GROUP_NOT_JOINABLE"):  # clear answers; anything else is an error
                    latencies.append((time.perf_counter() - gate.opened) * 1000)
                if placed is None:
                    return
                try:
                    payment = (await stub.PayOrder(order_pb2.PayOrderRequest(
                        order_id=placed.order.order_id, idempotency_key=uuid.uuid4().hex), metadata=md,
                        timeout=CALL_TIMEOUT_S)).payment
                    await stub.CompleteSandboxPayment(order_pb2.CompleteSandboxPaymentRequest(
                        payment_id=payment.payment_id), metadata=md, timeout=CALL_TIMEOUT_S)
                except grpc.aio.AioRpcError:
                    answers["PAYMENT_FAILED"] += 1

            await gate.burst([join(m, g) for m, g in zip(joiners, targets)])
        burst_s = time.perf_counter() - gate.opened
        progress("group_buy", f"burst answered and paid in {burst_s:.1f}s: {dict(answers)}")

    # The lonely groups expire at the activity's end; then everything settles.
    deadline = time.perf_counter() + WINDOW_S + SETTLE_S
    settle_started = time.perf_counter()
    while True:
        seen = await asyncio.to_thread(figures, bench, aid)
        grouping = seen["order_states"].get("GROUPING", 0) + seen["order_states"].get("PENDING_PAYMENT", 0)
        if (seen["open"] == 0 and grouping == 0) or time.perf_counter() > deadline:
            break
        await asyncio.sleep(1.0)
    settled_s = time.perf_counter() - settle_started
    progress("group_buy", f"settled after {settled_s:.1f}s: {seen}")
    load = Load(answered[0], sorted(latencies),
                Counter({r: n for r, n in answers.items() if r not in ("ORDER", "GROUP_NOT_JOINABLE")}))
    baseline = await stock_update_baseline(bench, BASELINE_CONCURRENCY, 1)
    return result("group_buy", load, baseline, JOINERS, members=len(members), group_size=SIZE, joiners=JOINERS,
                  answers=dict(answers), groups_opened_s=round(opened_s, 2), burst_and_pay_s=round(burst_s, 2),
                  settled_s=round(settled_s, 2), **seen)
