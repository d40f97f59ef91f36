"""Races a real shop runs into, through the gateway with every process running: hundreds
of members buying the last units at once, and payments that arrive just as an unpaid
order expires. Whatever the timing, no unit is oversold or left stuck and every fen of a
payment is accounted for."""
from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import httpx

from bench.flash_sale import retry_after
from tests.support import wait_until
import pytest

# Slow failure scenarios: `make chaos` runs them (see the Makefile).
pytestmark = pytest.mark.chaos

# Tests here read what the merchant holds as a whole, or change it: a new merchant for each.
SHOP_PER_TEST = True

CHANNELS = ("H5", "MINI_PROGRAM", "LIVE")


async def sent(client: httpx.AsyncClient, method: str, url: str, **kwargs) -> httpx.Response:
    """A request as the app sends it in a crowd: answered 503 (the gateway or a service at
    its bound of requests in flight) it is sent again after Retry-After, with the same body
    and so the same idempotency key; still 503 after a minute, that is the answer."""
    give_up_at = time.monotonic() + 60
    while True:
        resp = await client.request(method, url, **kwargs)
        delay = retry_after(resp)
        if delay is None or time.monotonic() + delay > give_up_at:
            return resp
        await asyncio.sleep(delay)


async def login_all(shop, unionids: list[str]) -> list[tuple[str, str]]:
    """(channel, access token) of one member per unionid, spread over the three channels."""
    async with httpx.AsyncClient(base_url=shop.url, timeout=60) as client:
        async def login(i: int, unionid: str) -> tuple[str, str]:
            channel = CHANNELS[i % len(CHANNELS)]
            resp = await sent(client, "POST", "/v1/auth/login", json={"code": f"sandbox:{unionid}"},
                              headers={"X-Api-Key": shop.key(channel)})
            assert resp.status_code == 200, resp.text
            return channel, resp.json()["access_token"]
        return await asyncio.gather(*(login(i, u) for i, u in enumerate(unionids)))


def headers(shop, channel: str, token: str) -> dict:
    return {"X-Api-Key": shop.key(channel), "Authorization": f"Bearer {token}"}


async def place_all(shop, buyers: list[tuple[str, str]], sku_id: str) -> list[httpx.Response]:
    """Every buyer orders one unit, all at the same moment."""
    limits = httpx.Limits(max_connections=len(buyers), max_keepalive_connections=len(buyers))
    async with httpx.AsyncClient(base_url=shop.url, timeout=60, limits=limits) as client:
        return await asyncio.gather(*(
            sent(client, "POST", "/v1/orders", headers=headers(shop, channel, token),
                 json={"idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku_id, "quantity": 1}]})
            for channel, token in buyers))


def test_200_members_racing_for_the_last_10_units(shop):
    sku = shop.new_sku(stock=10)
    buyers = asyncio.run(login_all(shop, [f"union-last-{i}" for i in range(200)]))
    assert len({token for _, token in buyers}) == 200

    responses = asyncio.run(place_all(shop, buyers, sku))

    assert Counter(r.status_code for r in responses) == {200: 10, 400: 190}, \
        Counter((r.status_code, r.text[:120]) for r in responses if r.status_code not in (200, 400))
    refusals = [r.json()["error"] for r in responses if r.status_code == 400]
    assert {(e["code"], e["reason"]) for e in refusals} == {("FAILED_PRECONDITION", "OUT_OF_STOCK")}
    assert all(e["message"] and e["request_id"] for e in refusals)
    # Exactly the winners' units are held: nothing leaked from the 190 refusals.
    assert shop.stock(sku) == {"on_hand": 10, "reserved": 10, "available": 0}

    winners = [(buyer, r.json()["order"]) for buyer, r in zip(buyers, responses) if r.status_code == 200]
    assert len({order["member_id"] for _, order in winners}) == 10
    for (channel, token), order in winners:
        assert order["state"] == "ORDER_STATE_PENDING_PAYMENT"
        paid = shop.pay(token, order["order_id"], channel=channel)
        assert paid["payment"]["state"] == "PAYMENT_STATE_SUCCEEDED"

    wait_until(lambda: shop.stock(sku) == {"on_hand": 0, "reserved": 0, "available": 0}, timeout=30,
               message="every paid reservation committed")
    audit = shop.audit(sku)
    assert audit["consistent"] is True, audit
    kinds = Counter(m["kind"] for m in audit["movements"])
    assert (kinds["RESERVE"], kinds["COMMIT"], kinds["RELEASE"]) == (10, 10, 0), kinds


# Long enough that the orders placed last are still payable when the callbacks of all
# arrive at once, on a machine busy with other tests too.
UNPAID_EXPIRY_S = 5
RACES = 20


def outcome(shop, order_id: str) -> tuple[str, tuple[str, ...]]:
    resp = shop.as_staff("GET", f"/v1/staff/orders/{order_id}")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return body["order"]["state"], tuple(sorted(p["state"] for p in body.get("payments", [])))


PAID = ("ORDER_STATE_PAID", ("PAYMENT_STATE_SUCCEEDED",))
CANCELLED_AND_REFUNDED = ("ORDER_STATE_CANCELLED", ("PAYMENT_STATE_REFUNDED",))


def test_payments_racing_the_unpaid_expiry_end_paid_or_cancelled_and_refunded(shop):
    shop.update_order_settings(unpaid_expiry_seconds=str(UNPAID_EXPIRY_S))
    sku = shop.new_sku(stock=RACES, price=2500)
    buyers = asyncio.run(login_all(shop, [f"union-race-{i}" for i in range(RACES)]))

    # Orders placed one after another expire one after another; each is ready to be paid.
    pending = []
    for channel, token in buyers:
        placed = shop.call("POST", "/v1/orders", channel=channel, token=token, json={
            "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": 1}]})
        assert placed.status_code == 200, placed.text
        order = placed.json()["order"]
        started = shop.call("POST", f"/v1/orders/{order['order_id']}:pay", channel=channel, token=token,
                            json={"idempotency_key": uuid.uuid4().hex})
        assert started.status_code == 200, started.text
        pending.append((channel, token, order, started.json()["payment"]))

    # Once the expiry job has cancelled the first order, every provider callback arrives at
    # once: the earliest orders are already cancelled, the latest are still payable, and
    # those in between race the expiry job.
    first = pending[0][2]["order_id"]
    wait_until(lambda: outcome(shop, first)[0] == "ORDER_STATE_CANCELLED", timeout=30,
               message="the first order expired")

    async def complete_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=shop.url, timeout=60) as client:
            return await asyncio.gather(*(
                client.post(f"/v1/sandbox/payments/{payment['payment_id']}:complete",
                            headers=headers(shop, channel, token), json={})
                for channel, token, _, payment in pending))
    callbacks = asyncio.run(complete_all())
    assert [r.status_code for r in callbacks] == [200] * RACES, [r.text for r in callbacks if r.status_code != 200]

    outcomes = {}
    for _, _, order, _ in pending:
        order_id = order["order_id"]
        seen = []

        def settled():
            seen.append(outcome(shop, order_id))
            return seen[-1] in (PAID, CANCELLED_AND_REFUNDED) and seen[-1]
        try:
            outcomes[order_id] = wait_until(settled, timeout=30)
        except AssertionError:
            detail = shop.as_staff("GET", f"/v1/staff/orders/{order_id}").text
            ledger = shop.as_staff("GET", f"/v1/staff/orders/{order_id}/ledger").text
            raise AssertionError(f"{order_id} ended {seen[-1]}, neither PAID nor CANCELLED+REFUNDED:\n"
                                 f"{detail}\n{ledger}") from None
    tally = Counter("paid" if o == PAID else "refunded" for o in outcomes.values())
    print(f"payment vs expiry over {RACES} orders: {dict(tally)}")
    assert outcomes[first] == CANCELLED_AND_REFUNDED
    assert tally["paid"] >= 1, "no callback beat the expiry: the race was not run"

    for order_id, final in outcomes.items():
        resp = shop.as_staff("GET", f"/v1/staff/orders/{order_id}/ledger")
        assert resp.status_code == 200, resp.text
        ledger = resp.json()
        assert ledger["balanced"] is True, ledger
        kinds = Counter(e["kind"] for e in ledger["entries"])
        amounts = {e["kind"]: int(e["amount"]["amount"]) for e in ledger["entries"]}
        if final == PAID:
            assert kinds["ORDER_PAYMENT"] == 1 and kinds["AUTO_REFUND"] == 0, ledger
            assert amounts["ORDER_PAYMENT"] == 2500
        else:
            assert kinds["AUTO_REFUND"] == 1 and kinds["ORDER_PAYMENT"] == 0, ledger
            assert amounts["AUTO_REFUND"] == 2500

    # Paid units left stock; every cancelled order's unit came back.
    left = RACES - tally["paid"]
    wait_until(lambda: shop.stock(sku) == {"on_hand": left, "reserved": 0, "available": left}, timeout=30,
               message="stock settled")
    assert shop.audit(sku)["consistent"] is True
