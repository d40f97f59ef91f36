"""late_events: `order.paid` reaches the catalog long after the reservation expired.

nats-server stops. Forty members keep placing orders for four SKUs with little stock and
four of every five members paying, for longer than the unpaid expiry (20 s) plus the reservation
grace (60 s) plus a few sweeper passes; unpaid orders expire meanwhile and their units are
sold again. Then NATS comes back and the outboxes drain. Every paid order must end with
its units committed or its money refunded, no SKU may have more units in kept orders than
it ever had, no reservation may stay held, and every stock audit and payment ledger must
balance.

The throughput columns are the place-and-pay rate while NATS is down; there is no
baseline: this is a correctness scenario, and its numbers are the outcome counts.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timezone

import httpx
from pymongo import MongoClient

from bench.harness import Bench, Load, Member, checked, error_reason, progress, result, send
from siyu_kit import config

MEMBERS = 40
SKUS = 4
UNITS_PER_SKU = 25
UNPAID_EXPIRY_S = 20
# The order service's reservation grace in the bench suite (its production default).
RESERVATION_GRACE_S = 60
# Past expiry + grace, with the catalog's sweeper given several passes.
NATS_DOWN_S = UNPAID_EXPIRY_S + RESERVATION_GRACE_S + 15
CONVERGE_S = 180
UNPAID_EVERY = 5  # every fifth member never pays: their orders expire and the units sell again
KEPT_STATES = {"PAID", "SHIPPED", "DELIVERED", "COMPLETED"}


async def prepare(desk: httpx.AsyncClient, bench: Bench) -> tuple[dict, list[str]]:
    staff = {"Authorization": f"Bearer {await bench.staff_token(desk)}", "X-Api-Key": ""}
    current = checked(await desk.get("/v1/staff/order-settings", headers=staff), "reading order settings")
    settings = current["settings"]
    checked(await desk.put("/v1/staff/order-settings", headers=staff, json={
        "settings": {**settings, "unpaid_expiry_seconds": str(UNPAID_EXPIRY_S)},
        "expected_version": settings["version"]}), "setting the unpaid expiry")
    code = f"bench-late-{uuid.uuid4().hex[:8]}"
    product = checked(await desk.post("/v1/staff/products", headers=staff, json={
        "code": code, "title": "迟到事件基准 Late Events Mug", "status": "PRODUCT_STATUS_ON_SHELF",
        "skus": [{"code": f"{code}-{n}", "list_price": {"amount": "3900", "currency": "CNY"},
                  "initial_stock": str(UNITS_PER_SKU)} for n in range(SKUS)]}), "creating the product")
    return staff, [s["sku_id"] for s in product["product"]["skus"]]


async def buy_until(phone: httpx.AsyncClient, member: Member, pays: bool, skus: list[str], until: float,
                    load: Load, outcome: Counter) -> None:
    auth = {"Authorization": f"Bearer {member.token}"}
    n = 0
    while time.monotonic() < until:
        n += 1
        started = time.perf_counter()
        placed = await send(phone, "POST", "/v1/orders", headers=auth, json={
            "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": skus[n % len(skus)], "quantity": 1}]})
        if placed.status_code != 200:
            reason = error_reason(placed)
            if reason == "OUT_OF_STOCK":
                outcome["out_of_stock_answers"] += 1  # the shop working as designed
            else:
                load.failures[reason] += 1
            await asyncio.sleep(0.5)  # sold out for now: units come back as unpaid orders expire
            continue
        outcome["placed"] += 1
        if not pays:
            outcome["left_unpaid"] += 1
            continue
        order_id = placed.json()["order"]["order_id"]
        paying = await send(phone, "POST", f"/v1/orders/{order_id}:pay", headers=auth,
                            json={"idempotency_key": uuid.uuid4().hex})
        if paying.status_code != 200:
            load.failures[f"pay:{error_reason(paying)}"] += 1
            continue
        payment_id = paying.json()["payment"]["payment_id"]
        done = await send(phone, "POST", f"/v1/sandbox/payments/{payment_id}:complete", headers=auth, json={})
        if done.status_code != 200:
            load.failures[f"complete:{error_reason(done)}"] += 1
            continue
        outcome["paid"] += 1
        load.latencies_ms.append((time.perf_counter() - started) * 1000)


def snapshot(bench: Bench) -> dict:
    """What the order and catalog databases say about the bench merchant right now."""
    client = MongoClient(bench.stack.mongodb_uri, tz_aware=True)
    try:
        orders_db = client[config.load("order").mongodb_db]
        catalog_db = client[config.load("catalog").mongodb_db]
        merchant = {"merchant_id": bench.merchant_id}
        orders = list(orders_db["orders"].find(merchant, {"outbox": 0}))
        payments = list(orders_db["payments"].find(merchant, {"outbox": 0}))
        reservations = {r["_id"]: r for r in catalog_db["reservations"].find(merchant, {"outbox": 0})}
        unsent = sum(db[name].count_documents({**merchant, "outbox_pending": {"$gt": 0}})
                     for db, name in ((orders_db, "orders"), (orders_db, "payments"),
                                      (catalog_db, "reservations")))
    finally:
        client.close()
    return {"orders": orders, "payments": payments, "reservations": reservations, "unsent": unsent}


def settled(snap: dict) -> bool:
    """Every order's stock has reached its final state, and nothing is left to publish."""
    now = datetime.now(timezone.utc)
    for order in snap["orders"]:
        reservation = snap["reservations"].get(order.get("reservation_id"))
        if reservation is None:
            continue
        if order["state"] in KEPT_STATES and reservation["state"] != "COMMITTED":
            return False
        if order["state"] == "CANCELLED" and reservation["state"] == "RESERVED":
            return False
    held = [r for r in snap["reservations"].values() if r["state"] == "RESERVED"
            and datetime.fromisoformat(str(r["expires_at"])).astimezone(timezone.utc) < now]
    return not held and snap["unsent"] == 0


def outcome_counts(snap: dict, skus: list[str]) -> dict:
    kept_units: dict[str, int] = defaultdict(int)
    paid_without_stock = 0
    for order in snap["orders"]:
        if order["state"] in KEPT_STATES:
            for line in order["lines"]:
                kept_units[line["sku_id"]] += int(line["quantity"])
            reservation = snap["reservations"].get(order.get("reservation_id"))
            if reservation is None or reservation["state"] != "COMMITTED":
                paid_without_stock += 1
    payments = Counter(p["state"] for p in snap["payments"])
    return {
        "paid_orders": sum(1 for o in snap["orders"] if o["state"] in KEPT_STATES),
        "cancelled_orders": sum(1 for o in snap["orders"] if o["state"] == "CANCELLED"),
        "payments_succeeded": payments.get("SUCCEEDED", 0),
        "payments_refunded": payments.get("REFUNDED", 0),
        "paid_without_stock": paid_without_stock,
        "oversold": sum(max(0, kept_units[s] - UNITS_PER_SKU) for s in skus),
        "units_sold": {s: kept_units[s] for s in skus},
        "held_reservations": sum(1 for r in snap["reservations"].values() if r["state"] == "RESERVED"),
    }


async def audits(desk: httpx.AsyncClient, staff: dict, skus: list[str], orders: list[dict]) -> dict:
    stock_ok = 0
    for sku in skus:
        audit = checked(await desk.get(f"/v1/staff/skus/{sku}/stock:audit", headers=staff), "auditing stock")
        stock_ok += bool(audit["consistent"])
    ledgers_ok = 0
    for order in orders:
        ledger = checked(await desk.get(f"/v1/staff/orders/{order['_id']}/ledger", headers=staff),
                         "reading a payment ledger")
        ledgers_ok += bool(ledger.get("balanced"))
    return {"stock_audits_consistent": f"{stock_ok}/{len(skus)}",
            "ledgers_balanced": f"{ledgers_ok}/{len(orders)}"}


async def run(bench: Bench) -> dict:
    members = await bench.login_members("bench-late", MEMBERS)
    async with bench.devices(MEMBERS + 1) as devices:
        desk, phones = devices[0], devices[1:]
        staff, skus = await prepare(desk, bench)
        progress("late_events", f"stopping nats-server for {NATS_DOWN_S}s while {MEMBERS} members buy")
        bench.stack.stop("nats")
        load, bought = Load(), Counter()
        started = time.perf_counter()
        try:
            until = time.monotonic() + NATS_DOWN_S
            await asyncio.gather(*(buy_until(phone, m, i % UNPAID_EVERY != 0, skus, until, load, bought)
                                   for i, (phone, m) in enumerate(zip(phones, members))))
        finally:
            load.elapsed_s = time.perf_counter() - started
            bench.stack.start_nats()
        progress("late_events", f"nats-server is back; {dict(bought)}; waiting for the suite to settle")
        back = time.monotonic()
        snap = snapshot(bench)
        while not settled(snap) and time.monotonic() - back < CONVERGE_S:
            await asyncio.sleep(1.0)  # a deadline on a condition, polled
            snap = snapshot(bench)
        converged_s = round(time.monotonic() - back, 1) if settled(snap) else None
        paid = [o for o in snap["orders"] if o.get("payment_id") or o["state"] in KEPT_STATES]
        checks = await audits(desk, staff, skus, paid)
    counts = outcome_counts(snap, skus)
    progress("late_events", f"{counts} {checks}")
    return result("late_events", load, {"what": "none: a correctness scenario"}, MEMBERS,
                  nats_down_s=NATS_DOWN_S, unpaid_expiry_s=UNPAID_EXPIRY_S,
                  reservation_grace_s=RESERVATION_GRACE_S, stock=SKUS * UNITS_PER_SKU,
                  orders_placed=bought["placed"], orders_left_unpaid=bought["left_unpaid"],
                  out_of_stock_answers=bought["out_of_stock_answers"],
                  converged_s=converged_s, unsent_outbox_documents=snap["unsent"], **counts, **checks)
