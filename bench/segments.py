"""segments: 100,000 members with order history, written straight into the member
database in bulk (members and their order statistics, as the order events would have left
them: day buckets, channels, first and last paid time), then:

- `rfm_recompute_s`: how long the member service's facts job takes to derive RFM scores,
  automatic tags and 365-day figures for every member (until no statistics are left
  changed and every member has facts);
- the p95 of a segment's live count (GetSegment through the gateway, repeated);
- `grants_per_s`: a staff-only coupon granted to a 10,000-member segment (members born in
  January), the member service killed (SIGKILL) and started again mid-grant; the rate is
  coupons issued over the time from the start of the grant to its end, restart included;
  `duplicates` must be 0 (no member holds two coupons of the grant) and `grant_reported`
  (the grant's own count when DONE) must equal `granted` (the coupons stored).

The member service runs with its facts job every second and its coupon jobs every 0.2 s
for this scenario (it is restarted with those settings first).
"""
from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from collections import Counter
from datetime import datetime, timedelta, timezone

from pymongo import MongoClient
from pymongo.errors import AutoReconnect, BulkWriteError, OperationFailure

from bench.harness import Bench, Load, checked, progress, result
from siyu_kit import config
from siyu_kit.ids import new_id

# BENCH_SEGMENTS_MEMBERS runs it smaller (the 100,000-member run takes long on the embedded server).
MEMBERS = int(os.environ.get("BENCH_SEGMENTS_MEMBERS") or 100_000)
SEGMENT_MEMBERS = MEMBERS // 10  # born in January: every tenth member
INSERT_BATCH = 2_000
COUNT_CALLS = 20
KILL_AFTER = min(3_000, SEGMENT_MEMBERS // 3)  # coupons issued before the member service is killed
SETTLE_S = 1_800  # the facts job for 100,000 members can outlast 15 minutes on two busy cores
POLL_S = 1
SERVICE_ENV = {"SIYU_MEMBER_RFM_JOB_INTERVAL_S": "1", "SIYU_MEMBER_COUPON_JOB_INTERVAL_S": "0.2"}
CHANNELS = ("H5", "WXMP", "APP")


def _db(bench: Bench):
    # Patient: a busy embedded server answers the driver's heartbeat late while it writes a batch.
    client = MongoClient(bench.stack.mongodb_uri, tz_aware=True, connectTimeoutMS=120_000,
                         serverSelectionTimeoutMS=300_000)
    return client, client[config.load("member").mongodb_db]


def _insert(collection, docs: list[dict]) -> None:
    """insert_many, again after a dropped connection (ids already stored are duplicates, skipped)."""
    for attempt in range(5):
        try:
            collection.insert_many(docs, ordered=False)
            return
        except BulkWriteError as failed:
            if any(e.get("code") != 11000 for e in failed.details.get("writeErrors") or []):
                raise
            return
        except (AutoReconnect, OperationFailure) as lost:
            if attempt == 4:
                raise
            progress("segments", f"insert retried after {type(lost).__name__}")
            time.sleep(2)


def _batches(merchant: str, seed: int):
    """(members, statistics) documents, INSERT_BATCH members at a time."""
    rnd = random.Random(seed)
    now = datetime.now(timezone.utc)
    members, stats = [], []
    for i in range(MEMBERS):
        member_id = new_id("mem")
        month = 1 if i % 10 == 0 else 2 + i % 11
        created = now - timedelta(days=rnd.randint(1, 900))
        members.append({"_id": member_id, "merchant_id": merchant, "nickname": f"bench-{i}", "avatar_url": "",
                        "registered_channel": "H5", "growth": rnd.randint(0, 5000), "version": 1,
                        "created_at": created, "birthday_md": f"{month:02d}-{1 + i % 28:02d}",
                        "marketing_consent": int(i % 3 != 0)})
        days: dict[str, dict[str, int]] = {}
        channels: Counter = Counter()
        paid = []
        for _ in range(rnd.choice((0, 1, 1, 2, 3, 5, 8))):
            at = now - timedelta(days=rnd.randint(0, 500), seconds=rnd.randint(0, 86_399))
            amount = rnd.randint(1_000, 80_000)
            bucket = days.setdefault(at.strftime("%Y%m%d"), {"o": 0, "a": 0})
            bucket["o"] += 1
            bucket["a"] += amount
            channels[rnd.choice(CHANNELS)] += 1
            paid.append(int(at.timestamp() * 1000))
        if paid:
            stats.append({"_id": f"{merchant}:{member_id}", "merchant_id": merchant, "member_id": member_id,
                          "paid_orders": len(paid), "refunds": 0, "refunded_amount": 0, "days": days,
                          "channels": dict(channels), "causes": {}, "version": len(paid), "dirty": 1,
                          "first_paid_ms": min(paid), "last_paid_ms": max(paid)})
        if len(members) >= INSERT_BATCH:
            yield members, stats
            members, stats = [], []
    if members:
        yield members, stats


def bulk_insert(bench: Bench, seed: int = 7) -> dict:
    """The bulk path: members and their statistics written straight into the member
    database, each batch one unordered insert_many per collection, the two collections on
    two connections at once while the next batch is generated."""
    (client_a, db_a), (client_b, db_b) = _db(bench), _db(bench)
    orders = 0
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            pending: list = []
            for members, stats in _batches(bench.merchant_id, seed):
                for done in pending:
                    done.result()
                orders += sum(s["paid_orders"] for s in stats)
                pending = [pool.submit(_insert, db_a.members, members)]
                if stats:
                    pending.append(pool.submit(_insert, db_b.member_stats, stats))
            for done in pending:
                done.result()
    finally:
        client_a.close()
        client_b.close()
    return {"members": MEMBERS, "orders": orders}


def facts_state(bench: Bench) -> tuple[bool, int]:
    """(any statistics still changed, members with facts) of the bench merchant: an indexed
    look-up and a `count` command (docs/storage.md), cheap enough to poll each second."""
    client, db = _db(bench)
    try:
        return (db.member_stats.find_one({"dirty": 1, "merchant_id": bench.merchant_id}, {"_id": 1}) is not None,
                int(db.command("count", "member_facts", query={"merchant_id": bench.merchant_id})["n"]))
    finally:
        client.close()


def granted(bench: Bench, template_id: str) -> tuple[int, int]:
    """(coupons of the template, members holding more than one)."""
    client, db = _db(bench)
    try:
        held = Counter(c["member_id"] for c in db.member_coupons.find(
            {"merchant_id": bench.merchant_id, "template_id": template_id}, {"member_id": 1}))
    finally:
        client.close()
    return sum(held.values()), sum(1 for n in held.values() if n > 1)


def issued_count(bench: Bench, template_id: str) -> int:
    client, db = _db(bench)
    try:
        return int(db.command("count", "member_coupons",
                              query={"merchant_id": bench.merchant_id, "template_id": template_id})["n"])
    finally:
        client.close()


def restart_member(bench: Bench, kill: bool) -> None:
    if kill:
        bench.stack.kill("member")
    else:
        bench.stack.stop("member")
    bench.stack.start_service("member", SERVICE_ENV)
    bench.stack.wait_ready(120)


async def run(bench: Bench) -> dict:
    await asyncio.to_thread(restart_member, bench, False)
    started = time.perf_counter()
    made = await asyncio.to_thread(bulk_insert, bench)
    insert_s = time.perf_counter() - started
    progress("segments", f"{made['members']} members, {made['orders']} orders inserted ({insert_s:.1f}s)")
    started = time.perf_counter()
    while True:
        changed, members_with_facts = await asyncio.to_thread(facts_state, bench)
        if not changed and members_with_facts >= MEMBERS or time.perf_counter() - started > SETTLE_S:
            break
        await asyncio.sleep(POLL_S)
    recompute_s = time.perf_counter() - started
    progress("segments", f"facts of {members_with_facts} members derived in {recompute_s:.1f}s"
                         f"{' (statistics still changed)' if changed else ''}")
    async with bench.devices(1) as (desk,):
        staff = {"Authorization": f"Bearer {await bench.staff_token(desk)}", "X-Api-Key": ""}
        rule = {"conditions": [{"field": "birthday_month", "op": "in", "numbers": ["1"]}]}
        segment = checked(await desk.post("/v1/staff/segments", headers=staff, json={"name": "一月生日", "rule": rule}),
                          "CreateSegment")["segment"]["segment_id"]
        busy = {"conditions": [{"field": "rfm_group", "op": "in", "values": ["重要价值客户", "重要发展客户"]},
                               {"field": "marketing_consent", "op": "in", "numbers": ["1"]}]}
        heavy = checked(await desk.post("/v1/staff/segments", headers=staff, json={"name": "重要客户", "rule": busy}),
                        "CreateSegment")["segment"]["segment_id"]
        load = Load(0.0, [], Counter())
        counted = {}
        count_started = time.perf_counter()
        for i in range(COUNT_CALLS):
            seg = (segment, heavy)[i % 2]
            t0 = time.perf_counter()
            resp = await desk.get(f"/v1/staff/segments/{seg}", headers=staff)
            if resp.status_code != 200:
                load.failures[str(resp.status_code)] += 1
                continue
            load.latencies_ms.append((time.perf_counter() - t0) * 1000)
            counted[seg] = int(resp.json()["segment"].get("member_count", 0))
        load.elapsed_s = time.perf_counter() - count_started
        progress("segments", f"counts: {counted}")
        template = checked(await desk.post("/v1/staff/coupon-templates", headers=staff, json={
            "name": "生日券 Bench", "rule": {"kind": "COUPON_KIND_NO_THRESHOLD", "amount_off": "500",
                                            "scope": "COUPON_SCOPE_ALL"},
            "validity": {"days": 30}, "total": "0", "per_member_limit": 1, "staff_only": True,
            "idempotency_key": uuid.uuid4().hex}), "CreateCouponTemplate")["template"]["template_id"]
        checked(await desk.post(f"/v1/staff/coupon-templates/{template}:setState", headers=staff,
                                json={"state": "COUPON_TEMPLATE_STATE_ACTIVE"}), "SetCouponTemplateState")
        grant_started = time.perf_counter()
        grant = checked(await desk.post(f"/v1/staff/coupon-templates/{template}/grants", headers=staff, json={
            "idempotency_key": uuid.uuid4().hex, "segment_id": segment}), "StartCouponGrant")["grant"]["grant_id"]
        killed_at, reported = -1, -1
        while time.perf_counter() - grant_started < SETTLE_S:
            issued = await asyncio.to_thread(issued_count, bench, template)
            if killed_at < 0 and issued >= KILL_AFTER:
                killed_at = issued
                progress("segments", f"killing the member service at {issued} coupons")
                await asyncio.to_thread(restart_member, bench, True)
                staff = {"Authorization": f"Bearer {await bench.staff_token(desk)}", "X-Api-Key": ""}
                continue
            resp = await desk.get(f"/v1/staff/coupon-grants/{grant}", headers=staff)
            if resp.status_code == 200 and resp.json()["grant"]["state"] == "DONE":
                reported = int(resp.json()["grant"].get("granted") or 0)
                break
            await asyncio.sleep(0.5)
        grant_s = time.perf_counter() - grant_started
    issued, duplicates = await asyncio.to_thread(granted, bench, template)
    progress("segments", f"{issued} coupons in {grant_s:.1f}s, {duplicates} duplicates (killed at {killed_at})")
    return result("segments", load, {"throughput_per_s": 0.0}, 1, members=MEMBERS, orders=made["orders"],
                  bulk_insert_s=round(insert_s, 1), rfm_recompute_s=round(recompute_s, 1),
                  members_with_facts=members_with_facts, segment_count_p95_ms=load.summary()["p95_ms"], counts=counted,
                  segment_members=counted.get(segment, 0), granted=issued, grant_s=round(grant_s, 1),
                  grants_per_s=round(issued / grant_s, 1) if grant_s else 0.0, killed_at=killed_at,
                  grant_reported=reported,
                  duplicates=duplicates)
