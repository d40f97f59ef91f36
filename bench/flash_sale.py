"""flash_sale: 2,000 signed-in members, each on their own connection, press "buy" on a
100-unit sale (limit 1 each) at the same instant, through the gateway; a winner pays
straight away (pressing pay again after a 503's Retry-After, as the app does; a press answered 503 with Retry-After, the suite at its bound, is pressed
again with the same key after that delay, as the app does; its latency still runs from the
common press). In the first round some winners walk away without paying: their orders
expire (the bench merchant's flash-sale expiry is 30 s), the units go back to the pool,
and everyone presses again. The sale must end with exactly 100 paid orders, nobody above
the limit, and nothing held: the check polls until no reservation of the merchant is
RESERVED and the pool holds no units, with a deadline SETTLE_S past the last order's
expiry. Units held by presses that were given up (a gateway timeout) before their order
was written count as stuck unless they came back by then; the catalog's own expiry of
such a reservation (the order's plus a 60 s grace) lies beyond the deadline.

ratio_to_baseline = answers per second of the first burst / raw conditional updates per
second on one document (every buyer races for the one pool counter).
"""
from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Awaitable

import httpx
from pymongo import MongoClient

from bench.baseline import stock_update_baseline
from bench.harness import (Bench, Gate, Load, Member, checked, error_reason, percentile, progress, result,
                           send)
from bench.rawhttp import RawPhone, RawResponse, connect_all
from siyu_kit import config

BUYERS = 2000
UNITS = 100
PER_MEMBER_LIMIT = 1
# Long enough for a winner to pay while 2,000 answers queue on two cores; short enough
# that the walk-aways' units come back within the run.
EXPIRY_S = 30
# How often the bench suite's order-expiry and reservation sweepers run.
SWEEP_INTERVAL_S = 1
WALK_AWAY = 30  # first-round winners who never pay
MAX_ROUNDS = 4
# After the last order's expiry: time for the order-expiry job, the events and the
# sweepers to hand everything back (they run every SWEEP_INTERVAL_S on an idle suite).
SETTLE_S = 30
SETTLE_POLL_S = 0.5
BASELINE_CONCURRENCY = 16
# Answers that are the sale working as designed; anything else is an error.
CLEAR_ANSWERS = {"SOLD_OUT", "LIMIT_REACHED"}
# How long after the common press a buyer still presses again when told to retry later.
PRESS_RETRY_WITHIN_S = 20.0


def retry_after(resp: httpx.Response | RawResponse | None) -> float | None:
    """The delay of a 503 that says when to try again, else None."""
    if resp is None or resp.status_code != 503:
        return None
    try:
        return max(0.0, float(resp.headers.get("retry-after", "")))
    except ValueError:
        return None


@dataclass(frozen=True)
class Buyer:
    member: Member
    phone: httpx.AsyncClient

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.member.token}"}


@dataclass
class Round:
    answers: Counter = field(default_factory=Counter)
    win_ms: list[float] = field(default_factory=list)
    lose_ms: list[float] = field(default_factory=list)
    paid: list[tuple[Buyer, dict]] = field(default_factory=list)
    walked_away: list[tuple[Buyer, dict]] = field(default_factory=list)
    payment_failed: list[tuple[Buyer, dict]] = field(default_factory=list)
    answered_s: float = 0.0  # from the press to the last answer
    retried_503: int = 0  # presses made again after a 503 with Retry-After

    @property
    def orders(self) -> list[tuple[Buyer, dict]]:
        return self.paid + self.walked_away + self.payment_failed

    def load(self) -> Load:
        """Every clear answer (an order, SOLD_OUT, LIMIT_REACHED) counts as served."""
        return Load(self.answered_s, self.win_ms + self.lose_ms,
                    Counter({r: n for r, n in self.answers.items() if r != "ORDER" and r not in CLEAR_ANSWERS}))

    def summary(self) -> dict:
        return {"presses": sum(self.answers.values()), "answers": dict(self.answers), "paid": len(self.paid),
                "walked_away": len(self.walked_away), "payment_failed": len(self.payment_failed),
                "answered_ms": round(self.answered_s * 1000, 1), "retried_503": self.retried_503}


def rfc3339(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def units(sale: dict, name: str) -> int:
    return int(sale.get(name, 0))


async def ok(call: Awaitable[httpx.Response], what: str) -> dict:
    return checked(await call, what)


# Buyers loading the sale's page at the same time, before the press (not measured).
PAGE_LOADS_AT_ONCE = 64


async def open_page(buyers: list[Buyer], sale_id: str) -> None:
    """Every buyer loads the sale first, as the page does (retrying a 503 or 504 as it
    would); this also opens their connections."""
    at_once = asyncio.Semaphore(PAGE_LOADS_AT_ONCE)

    async def load(buyer: Buyer) -> None:
        async with at_once:
            for _ in range(30):
                resp = await send(buyer.phone, "GET", f"/v1/flash-sales/{sale_id}", headers=buyer.auth)
                if resp.status_code not in (503, 504):
                    break
                await asyncio.sleep(retry_after(resp) or 0.5)
            checked(resp, "GetFlashSale")

    await asyncio.gather(*(load(b) for b in buyers))


# How long a winner keeps trying to pay when told to retry later (503 with Retry-After).
PAY_RETRY_WITHIN_S = 20.0


async def send_until_served(buyer: Buyer, path: str, body: dict) -> httpx.Response:
    """POSTs `body` (the same idempotency key each time), pressing again after each 503's
    Retry-After as the app does, for up to PAY_RETRY_WITHIN_S."""
    started = time.perf_counter()
    while True:
        resp = await send(buyer.phone, "POST", path, headers=buyer.auth, json=body)
        delay = retry_after(resp)
        if delay is None or time.perf_counter() - started + delay > PAY_RETRY_WITHIN_S:
            return resp
        await asyncio.sleep(delay)


async def pay(buyer: Buyer, order: dict) -> bool:
    """Pays the order and completes the sandbox payment."""
    resp = await send_until_served(buyer, f"/v1/orders/{order['order_id']}:pay",
                                   {"idempotency_key": uuid.uuid4().hex})
    if resp.status_code != 200:
        return False
    payment_id = resp.json()["payment"]["payment_id"]
    done = await send_until_served(buyer, f"/v1/sandbox/payments/{payment_id}:complete", {})
    return done.status_code == 200 and done.json()["payment"]["state"] == "PAYMENT_STATE_SUCCEEDED"


# A press that has no answer by then is counted as such (TIMEOUT).
PRESS_TIMEOUT_S = 60.0


def press_phones(bench: Bench, buyers: list[Buyer]) -> list[RawPhone]:
    """Each buyer's press connection, through a client light enough not to be the
    bottleneck itself: with httpx, 2,000 buyers pressing again after 503s took more CPU
    than the gateway answering them (bench/rawhttp.py)."""
    key = bench.shop["api_keys"]["H5"]
    return [RawPhone("127.0.0.1", bench.stack.ports["gateway"], {"X-Api-Key": key, **b.auth}) for b in buyers]


async def press_once(phone: RawPhone, path: str, body: dict) -> tuple[str, RawResponse | None]:
    """ORDER, the API's reason word, or what went wrong on the wire. A connection the
    gateway closed while the buyer waited out a Retry-After (longer than its keep-alive) is
    opened again and the press sent again, as any HTTP client does: the key is the same."""
    for attempt in range(3):
        try:
            resp = await phone.post(path, json_body=body, timeout=PRESS_TIMEOUT_S)
        except TimeoutError:
            await phone.close()
            return "TIMEOUT", None
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            await phone.close()  # the next attempt opens a new connection
            if attempt == 2:
                return type(error).__name__, None
            continue
        return ("ORDER" if resp.status_code == 200 else error_reason(resp)), resp
    raise AssertionError("unreachable")


async def press(buyers: list[Buyer], phones: list[RawPhone], sale_id: str, walk_away: int) -> Round:
    """All buyers press at once; latencies run from that common instant. A winner pays
    straight away, except the first `walk_away` winners, who leave their order unpaid."""
    rnd = Round()
    gate = Gate()
    path = f"/v1/flash-sales/{sale_id}:buy"

    async def press_one(buyer: Buyer, phone: RawPhone) -> None:
        await gate.wait()
        body = {"idempotency_key": uuid.uuid4().hex, "quantity": "1"}
        while True:
            reason, resp = await press_once(phone, path, body)
            # A busy suite answers 503 with Retry-After at once; the app presses again (the
            # same key) after that delay, within the press's time.
            delay = retry_after(resp)
            if delay is None or time.perf_counter() - gate.opened + delay > PRESS_RETRY_WITHIN_S:
                break
            rnd.retried_503 += 1
            await asyncio.sleep(delay)
        answered_s = time.perf_counter() - gate.opened
        rnd.answered_s = max(rnd.answered_s, answered_s)
        rnd.answers[reason] += 1
        if reason in CLEAR_ANSWERS:
            rnd.lose_ms.append(answered_s * 1000)
        if reason != "ORDER":
            return
        rnd.win_ms.append(answered_s * 1000)
        assert resp is not None
        won = (buyer, resp.json()["order"])
        if len(rnd.walked_away) < walk_away:
            rnd.walked_away.append(won)
        elif await pay(*won):
            rnd.paid.append(won)
        else:
            rnd.payment_failed.append(won)

    await gate.burst([press_one(b, p) for b, p in zip(buyers, phones)])
    return rnd


async def poll_sale(http: httpx.AsyncClient, sale_id: str, done, timeout_s: float) -> dict:
    """The sale once `done(sale)` holds, or as it is when `timeout_s` runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        sale = (await ok(send(http, "GET", f"/v1/flash-sales/{sale_id}"), "GetFlashSale"))["flash_sale"]
        if done(sale) or time.monotonic() > deadline:
            return sale
        await asyncio.sleep(0.2)


async def prepare(http: httpx.AsyncClient, bench: Bench) -> dict:
    """Short flash-sale expiry for the merchant, then the sale, starting in two seconds."""
    staff = {"Authorization": f"Bearer {await bench.staff_token(http)}", "X-Api-Key": ""}
    current = (await ok(http.get("/v1/staff/order-settings", headers=staff), "GetOrderSettings"))["settings"]
    await ok(http.put("/v1/staff/order-settings", headers=staff, json={
        "settings": {**current, "flash_sale_expiry_seconds": str(EXPIRY_S)},
        "expected_version": current.get("version", "0")}), "UpdateOrderSettings")
    now = datetime.now(timezone.utc)
    return (await ok(http.post("/v1/staff/flash-sales", headers=staff, json={
        "title": "秒杀 Bench Flash Sale", "sku_id": bench.shop["flash_sku"],
        "price": {"amount": "990", "currency": "CNY"}, "units": str(UNITS), "per_member_limit": PER_MEMBER_LIMIT,
        "starts_at": rfc3339(now + timedelta(seconds=2)), "ends_at": rfc3339(now + timedelta(hours=1)),
        "idempotency_key": uuid.uuid4().hex}), "CreateFlashSale"))["flash_sale"]


async def order_states(orders: list[tuple[Buyer, dict]]) -> dict[str, str]:
    """Each order's state as its member sees it now."""
    async def state(buyer: Buyer, order: dict) -> tuple[str, str]:
        resp = await send(buyer.phone, "GET", f"/v1/orders/{order['order_id']}", headers=buyer.auth)
        return order["order_id"], resp.json()["order"]["state"] if resp.status_code == 200 else "UNKNOWN"

    return dict(await asyncio.gather(*(state(b, o) for b, o in orders)))


@dataclass
class Settled:
    sale: dict
    held: int  # reservations of the merchant still RESERVED
    expired: int  # of those, past their expiry
    converged_s: float | None  # from the start of the check until nothing was held; None: never


def reservations_held(bench: Bench, client: MongoClient) -> tuple[int, int]:
    """The merchant's reservations still RESERVED in the catalog's database, and how many
    of them are past their expiry."""
    reservations = client[config.load("catalog").mongodb_db]["reservations"]
    held = {"merchant_id": bench.merchant_id, "state": "RESERVED"}
    return (reservations.count_documents(held),
            reservations.count_documents({**held, "expires_at": {"$lt": datetime.now(timezone.utc)}}))


async def settle(http: httpx.AsyncClient, bench: Bench, sale_id: str, last_expiry: datetime) -> Settled:
    """Polls until no reservation is held and the pool holds no units, or until SETTLE_S
    after the last order's expiry; what is still held then is stuck."""
    deadline = max(last_expiry, datetime.now(timezone.utc)) + timedelta(seconds=SETTLE_S)
    started = time.monotonic()
    client = MongoClient(bench.stack.mongodb_uri, tz_aware=True)
    try:
        while True:
            sale = (await ok(send(http, "GET", f"/v1/flash-sales/{sale_id}"), "GetFlashSale"))["flash_sale"]
            held, expired = await asyncio.to_thread(reservations_held, bench, client)
            if held == 0 and units(sale, "reserved_units") == 0:
                return Settled(sale, 0, 0, time.monotonic() - started)
            if datetime.now(timezone.utc) > deadline:
                return Settled(sale, held, expired, None)
            await asyncio.sleep(SETTLE_POLL_S)
    finally:
        client.close()


async def run(bench: Bench) -> dict:
    started = time.perf_counter()
    members = await bench.login_members("bench-flash", BUYERS, concurrency=64)
    progress("flash_sale", f"{len(members)} members signed in ({time.perf_counter() - started:.1f}s)")
    # Members who press a flash sale registered before it: their sign-ups' events are handled.
    progress("flash_sale", f"the suite settled in {await bench.settled():.1f}s")
    async with bench.devices(len(members) + 1) as devices:
        desk, buyers = devices[0], [Buyer(m, phone) for m, phone in zip(members, devices[1:])]
        sale = await prepare(desk, bench)
        sale_id, starts_at = sale["flash_sale_id"], parse_time(sale["starts_at"])
        rounds: list[Round] = []
        for n in range(1, MAX_ROUNDS + 1):
            await open_page(buyers, sale_id)
            wait_s = (starts_at - datetime.now(timezone.utc)).total_seconds()
            if wait_s > 0:
                await asyncio.sleep(wait_s)  # the sale opens at a set time; everyone presses then
            phones = await connect_all(press_phones(bench, buyers))
            try:
                rnd = await press(buyers, phones, sale_id, WALK_AWAY if n == 1 else 0)
            finally:
                await asyncio.gather(*(p.close() for p in phones))
            rounds.append(rnd)
            progress("flash_sale", f"round {n}: {rnd.summary()}")
            if sum(len(r.paid) for r in rounds) >= UNITS:
                break
            # Unpaid orders expire and hand their units back to the pool, as do presses given
            # up before their order was written; everyone presses again while units are left.
            after = await poll_sale(desk, sale_id, lambda s: units(s, "reserved_units") == 0, EXPIRY_S + 30)
            if units(after, "available_units") == 0:
                break

        orders = [o for r in rounds for o in r.orders]
        last_expiry = max((parse_time(o["expires_at"]) for _, o in orders), default=datetime.now(timezone.utc))
        settled = await settle(desk, bench, sale_id, last_expiry)
        final = settled.sale
        states = await order_states(orders)

    first = rounds[0]
    paid_by = Counter(b.member.member_id for b, o in orders if states[o["order_id"]] == "ORDER_STATE_PAID")
    paid_orders = sum(paid_by.values())
    over_limit = sum(1 for count in paid_by.values() if count > PER_MEMBER_LIMIT)
    stuck_pool = units(final, "reserved_units")
    walked_away = [o for r in rounds for _, o in r.walked_away]
    wins, lose_ms = sorted(first.win_ms), sorted(first.lose_ms)
    baseline = await stock_update_baseline(bench, BASELINE_CONCURRENCY, 1)
    return result(
        "flash_sale", first.load(), baseline, len(buyers),
        units=UNITS, buyers=len(buyers), per_member_limit=PER_MEMBER_LIMIT, flash_sale_expiry_s=EXPIRY_S,
        paid_orders=paid_orders,
        oversold=max(0, max(paid_orders, units(final, "sold_units")) - UNITS) + over_limit,
        members_over_limit=over_limit,
        stuck_reservations=max(settled.held, stuck_pool),
        stuck_detail={"reserved_reservations": settled.held, "expired_reserved_reservations": settled.expired,
                      "pool_reserved_units": stuck_pool},
        settled_ms=None if settled.converged_s is None else round(settled.converged_s * 1000, 1),
        # The pool is first empty when the UNITS-th order of the first burst is answered.
        sold_out_ms=round(wins[UNITS - 1], 1) if len(wins) >= UNITS else None,
        loser_p50_ms=round(percentile(lose_ms, 50), 1), loser_p95_ms=round(percentile(lose_ms, 95), 1),
        answers=dict(sum((r.answers for r in rounds), Counter())),
        rounds=[r.summary() for r in rounds],
        walked_away_cancelled=sum(1 for o in walked_away if states[o["order_id"]] == "ORDER_STATE_CANCELLED"),
        final_pool={k: units(final, k) for k in ("total_units", "available_units", "reserved_units", "sold_units")})
