"""settlement: 10,000 completed orders credited to a distributor and their upline (10% and
5%), written straight into the order database as the order service leaves a completed
order — built by the order domain itself (`Order.place` → `pay` → `ship` → `complete`,
stored with `order_doc`, its payment and its payment-ledger entry beside it) — with a
supplier linked to the SKU; then:

- `settle_per_s`: orders settled by the order service's settlement job (one conditional
  write each, with order.settled in its outbox) over the time from the first to the last;
- `split_per_s`: payment splits written (the order service consuming its own
  order.settled), and `split_ledger_mismatches` — splits whose gross differs from the
  order's payment ledger, which must be 0;
- `commissions_per_s`: commission records the member service moved to SETTLED from
  order.settled and credited to the two balances; the balances must equal the commissions
  to the fen, and each balance must equal the sum of its ledger entries;
- 100 concurrent withdrawals on the distributor's balance, each larger than a hundredth of
  it: `overdrawn` (the balance below zero or held above what it was) must be 0.

The order service runs its settlement job every 0.2 s for this scenario (it is restarted
with that setting first).
"""
from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import datetime, timedelta, timezone

import httpx
from pymongo import MongoClient

from bench.harness import Bench, Load, checked, progress, result
from services.order.adapters.documents import order_doc
from services.order.domain.commissions import Referral
from services.order.domain.ledger import order_account, payment_applied
from services.order.domain.orders import Order, OrderLine
from siyu_kit import config
from siyu_kit.ids import new_id

ORDERS = int(os.environ.get("BENCH_SETTLEMENT_ORDERS") or 10_000)
PRICE = 10_000  # fen per order
SUPPLY_PRICE = 4_000
RATES = (1_000, 500)  # basis points: level 1, level 2
BUYERS = 500
INSERT_BATCH = 1_000
WITHDRAWALS = 100
SETTLE_S = 1_800
POLL_S = 1
SERVICE_ENV = {"SIYU_ORDER_SETTLE_INTERVAL_S": "0.2", "SIYU_ORDER_SPLIT_EXECUTE_INTERVAL_S": "0.5"}


def _db(bench: Bench, service: str):
    client = MongoClient(bench.stack.mongodb_uri, tz_aware=True, connectTimeoutMS=120_000,
                         serverSelectionTimeoutMS=300_000)
    return client, client[config.load(service).mongodb_db]


def _completed(merchant_id: str, sku_id: str, product_id: str, referral: Referral, buyer: str,
               now: datetime) -> tuple[dict, dict, dict]:
    """(order, payment, ledger entry) documents of one order paid through the sandbox and
    completed a day ago, as the order service stores them."""
    order_id, payment_id = new_id("ord"), new_id("pay")
    line = OrderLine(line_id=new_id("oln"), sku_id=sku_id, product_id=product_id, title="结算基准 Settlement Tee",
                     quantity=1, unit_price=PRICE, line_total=PRICE, line_amount=PRICE, paid_amount=PRICE)
    placed = now - timedelta(days=2)
    order = Order.place(order_id=order_id, merchant_id=merchant_id, member_id=buyer, idempotency_key=order_id,
                        lines=[line], currency="CNY", total=PRICE, payable=PRICE, reservation_id=new_id("rsv"),
                        created_at=placed, expires_at=placed + timedelta(minutes=30), referral=referral)
    order.pay(payment_id, placed + timedelta(minutes=1))
    order.ship("SF", "SF" + order_id[-10:], int((placed + timedelta(hours=2)).timestamp() * 1000),
               auto_confirm_days=10, open_refunds=0)
    order.complete(now - timedelta(days=1))
    order.pull_events()
    doc = order_doc(order)
    # What the order repository writes at completion for the settle job's scan.
    doc.update({"settle_open": 1, "settle_ms": int(order.completed_at.timestamp() * 1000),
                "outbox": {}, "outbox_pending": 0, "outbox_seq": 0})
    payment = {"_id": payment_id, "merchant_id": merchant_id, "order_id": order_id, "method": "SANDBOX",
               "state": "SUCCEEDED", "amount": PRICE, "currency": "CNY", "provider_txn_id": "sbx_txn_" + payment_id,
               "created_at": order.paid_at, "succeeded_at": order.paid_at, "version": 1}
    entry = payment_applied(order_id, payment_id, PRICE)
    ledger = {"_id": entry.entry_id, "merchant_id": merchant_id, "order_id": order_id, "payment_id": payment_id,
              "refund_id": "", "kind": entry.kind, "debit_account": entry.debit, "credit_account": entry.credit,
              "amount": entry.amount, "currency": "CNY", "at": order.paid_at}
    assert entry.credit == order_account(order_id)
    return doc, payment, ledger


def bulk_insert(bench: Bench, sku_id: str, product_id: str, referral: Referral) -> None:
    client, db = _db(bench, "order")
    now = datetime.now(timezone.utc)
    buyers = [new_id("mem") for _ in range(BUYERS)]
    try:
        for start in range(0, ORDERS, INSERT_BATCH):
            made = [_completed(bench.merchant_id, sku_id, product_id, referral, buyers[i % BUYERS], now)
                    for i in range(start, min(ORDERS, start + INSERT_BATCH))]
            db.payments.insert_many([p for _, p, _ in made], ordered=False)
            db.ledger_entries.insert_many([e for _, _, e in made], ordered=False)
            db.orders.insert_many([o for o, _, _ in made], ordered=False)
    finally:
        client.close()


def counts(bench: Bench) -> tuple[int, int, int, int]:
    """(orders settled, splits written, splits not matching their ledger, commission records SETTLED)."""
    (oc, odb), (mc, mdb) = _db(bench, "order"), _db(bench, "member")
    try:
        mid = bench.merchant_id
        return (int(odb.command("count", "orders", query={"merchant_id": mid, "settle_open": 0})["n"]),
                int(odb.command("count", "order_splits", query={"merchant_id": mid})["n"]),
                int(odb.command("count", "order_splits", query={"merchant_id": mid, "ledger_matches": 0})["n"]),
                int(mdb.command("count", "commission_records", query={"merchant_id": mid, "stage": "SETTLED"})["n"]))
    finally:
        oc.close()
        mc.close()


def ledger_balanced(bench: Bench, beneficiaries: list[str]) -> bool:
    """Each beneficiary's balance equals the sum of its commission ledger entries."""
    client, db = _db(bench, "member")
    try:
        for who in beneficiaries:
            account = db.commission_accounts.find_one({"merchant_id": bench.merchant_id, "beneficiary_id": who}) or {}
            sums = {k: 0 for k in ("available", "withdrawing", "withdrawn", "debt")}
            for e in db.commission_entries.find({"merchant_id": bench.merchant_id, "beneficiary_id": who}):
                for k in sums:
                    sums[k] += int(e.get(k) or 0)
            if any(int(account.get(k) or 0) != v for k, v in sums.items()):
                return False
        return True
    finally:
        client.close()


def restart_order(bench: Bench) -> None:
    bench.stack.stop("order")
    bench.stack.start_service("order", SERVICE_ENV)
    bench.stack.wait_ready(120)


async def _member(http: httpx.AsyncClient, name: str) -> tuple[str, str]:
    body = checked(await http.post("/v1/auth/login", json={"code": f"sandbox:settle-{name}-{uuid.uuid4().hex[:8]}"}),
                   "login")
    return body["access_token"], body["member"]["member_id"]


async def _balance(http: httpx.AsyncClient, token: str) -> dict[str, int]:
    summary = checked(await http.get("/v1/me/commissions/summary", headers={"Authorization": f"Bearer {token}"}),
                      "summary")["summary"]
    return {k: int(summary.get("balance", {}).get(k, {}).get("amount", 0))
            for k in ("available", "withdrawing", "withdrawn", "debt")}


async def run(bench: Bench) -> dict:
    await asyncio.to_thread(restart_order, bench)
    async with bench.devices(1) as (http,):
        staff = {"Authorization": f"Bearer {await bench.staff_token(http)}", "X-Api-Key": ""}
        product = checked(await http.post("/v1/staff/products", headers=staff, json={
            "code": f"settle-{uuid.uuid4().hex[:8]}", "title": "结算基准 Settlement Tee",
            "status": "PRODUCT_STATUS_ON_SHELF", "skus": [{"code": "settle-1", "initial_stock": "10",
                                                          "list_price": {"amount": str(PRICE), "currency": "CNY"}}]}),
            "product")["product"]
        sku_id = product["skus"][0]["sku_id"]
        supplier = checked(await http.post("/v1/staff/suppliers", headers=staff, json={
            "idempotency_key": uuid.uuid4().hex, "supplier": {
                "name": "基准供应商", "contact": "王", "phone": "13800000000",
                "account_kind": "SETTLEMENT_ACCOUNT_KIND_PROVIDER_MERCHANT", "settlement_account": "1900000109"}}),
            "supplier")
        checked(await http.put(f"/v1/staff/supplier-links/{sku_id}", headers=staff, json={
            "supplier_id": supplier["supplier"]["supplier_id"],
            "supply_price": {"amount": str(SUPPLY_PRICE), "currency": "CNY"}}), "link")
        settings = checked(await http.get("/v1/staff/order-settings", headers=staff), "order settings")["settings"]
        checked(await http.put("/v1/staff/order-settings", headers=staff, json={
            "settings": {**settings, "after_sales_days": 0}, "expected_version": settings["version"]}), "window")
        limits = checked(await http.get("/v1/staff/withdrawal-settings", headers=staff), "withdrawal settings")
        checked(await http.put("/v1/staff/withdrawal-settings", headers=staff, json={
            "settings": {"min_amount": "100", "fee_bp": 0, "daily_limit": str(PRICE * ORDERS)},
            "expected_version": limits["version"]}), "withdrawal limits")
        d_token, d_id = await _member(http, "distributor")
        u_token, u_id = await _member(http, "upline")
    referral = Referral(distributor_id=d_id, distributor_rate_bp=RATES[0], upline_distributor_id=u_id,
                        upline_rate_bp=RATES[1])

    started = time.perf_counter()
    await asyncio.to_thread(bulk_insert, bench, sku_id, product["product_id"], referral)
    insert_s = time.perf_counter() - started
    progress("settlement", f"{ORDERS} completed orders written in {insert_s:.1f}s; settling…")

    begun = time.perf_counter()
    marks: dict[str, float] = {}
    settled = splits = mismatches = records = 0
    while time.perf_counter() - begun < SETTLE_S:
        settled, splits, mismatches, records = await asyncio.to_thread(counts, bench)
        for name, done, goal in (("settled", settled, ORDERS), ("split", splits, ORDERS),
                                 ("commissions", records, 2 * ORDERS)):
            if done >= goal and name not in marks:
                marks[name] = time.perf_counter() - begun
        if len(marks) == 3:
            break
        progress("settlement", f"settled {settled}, splits {splits}, commission records settled {records}")
        await asyncio.sleep(POLL_S)

    def rate(name: str, done: int) -> float:
        return round(done / marks[name], 1) if name in marks else 0.0

    async with bench.devices(1) as (http,):
        member = {"X-Api-Key": bench.shop["api_keys"]["H5"]}
        http.headers.update(member)
        distributor, upline = await _balance(http, d_token), await _balance(http, u_token)
        expected = (ORDERS * PRICE * RATES[0] // 10_000, ORDERS * PRICE * RATES[1] // 10_000)
        balanced = ledger_balanced(bench, [d_id, u_id])

        # 100 withdrawals at once, together asking for half again the distributor's balance.
        before = distributor["available"]
        each = before * 3 // 2 // WITHDRAWALS
        load = Load()

        async def withdraw(i: int) -> None:
            t0 = time.perf_counter()
            resp = await http.post("/v1/me/withdrawals", headers={"Authorization": f"Bearer {d_token}"}, json={
                "idempotency_key": f"bench-wd-{i}-{uuid.uuid4().hex[:6]}",
                "amount": {"amount": str(each), "currency": "CNY"}})
            if resp.status_code == 200:
                load.latencies_ms.append((time.perf_counter() - t0) * 1000)
            else:
                load.failures[resp.json().get("error", {}).get("reason", str(resp.status_code))] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(withdraw(i) for i in range(WITHDRAWALS)))
        load.elapsed_s = time.perf_counter() - t0
        after = await _balance(http, d_token)
    held = len(load.latencies_ms) * each
    overdrawn = int(after["available"] < 0 or held > before or after["available"] + after["withdrawing"] != before)
    return result("settlement", load, {}, WITHDRAWALS, orders=ORDERS, insert_s=round(insert_s, 1),
                  settle_s=round(marks.get("settled", 0.0), 1), settle_per_s=rate("settled", settled),
                  split_per_s=rate("split", splits), commissions_per_s=rate("commissions", records),
                  settled=settled, splits=splits, split_ledger_mismatches=mismatches, commission_records=records,
                  distributor_available=distributor["available"], upline_available=upline["available"],
                  expected_available=list(expected),
                  commissions_balanced=int((distributor["available"], upline["available"]) == expected),
                  commission_ledger_balanced=int(balanced), withdrawal_each=each,
                  withdrawals_accepted=len(load.latencies_ms), withdrawals_refused=dict(load.failures),
                  held=held, balance_before=before, overdrawn=overdrawn)
