"""The database killed and restarted while members place orders through the gateway:
callers get 503 with Retry-After while it is away, never a 500; once it is back, every
order that was answered is still there, and retrying a refused one with its idempotency
key places it exactly once."""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx
import pytest

from tests.support import wait_until

# A slow failure scenario: `make chaos` runs it (see the Makefile).
pytestmark = [pytest.mark.e2e, pytest.mark.chaos]
WORKERS = 4


@dataclass
class Load:
    """Members placing one-unit orders in a loop until told to stop."""
    shop: object
    sku: str
    tokens: list[str]
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # (member index, idempotency key, status, Retry-After, body)
    answers: list[tuple[int, str, int, str | None, dict]] = field(default_factory=list)

    def run(self, member: int) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                key = uuid.uuid4().hex
                try:
                    resp = client.post(self.shop.url + "/v1/orders", json={
                        "idempotency_key": key, "lines": [{"sku_id": self.sku, "quantity": 1}]},
                        headers={"X-Api-Key": self.shop.key(), "Authorization": f"Bearer {self.tokens[member]}"})
                except httpx.TransportError:
                    continue  # the gateway itself never goes away here; do not count it
                with self.lock:
                    self.answers.append((member, key, resp.status_code, resp.headers.get("retry-after"),
                                         resp.json()))
                # Stays under the per-member rate limit, so every refusal is the outage's.
                time.sleep(0.06)

    def count(self, status: int, since: int = 0) -> int:
        with self.lock:
            return sum(1 for a in self.answers[since:] if a[2] == status)


def test_database_killed_and_restarted_under_load_gives_503s_and_loses_nothing(stack, shop):
    sku = shop.new_sku(stock=5000, price=100)
    tokens = [shop.login(f"union-outage-{i}-{uuid.uuid4().hex[:6]}")["access_token"] for i in range(WORKERS)]
    load = Load(shop, sku, tokens)
    threads = [threading.Thread(target=load.run, args=(i,), daemon=True) for i in range(WORKERS)]
    for t in threads:
        t.start()
    restarted = False
    try:
        wait_until(lambda: load.count(200) >= 10, timeout=30, message="orders placed before the outage")
        stack.kill("mongo")
        killed_at = len(load.answers)
        wait_until(lambda: load.count(503, killed_at) >= 10, timeout=30, message="503s during the outage")
        # Start the same nx-27017 on the same port and data; NATS keeps running.
        stack.start_mongo()
        restarted = True
        back_at = len(load.answers)
        wait_until(lambda: load.count(200, back_at) >= 10, timeout=45, message="orders placed after the restart")
    finally:
        load.stop.set()
        for t in threads:
            t.join(timeout=30)
        if not restarted and "mongo" not in stack.procs:
            stack.start_mongo()
        stack.wait_ready(timeout=60)

    statuses = {a[2] for a in load.answers}
    assert statuses <= {200, 503}, [a for a in load.answers if a[2] not in (200, 503)][:3]
    refused = [a for a in load.answers if a[2] == 503]
    assert refused
    for _, _, _, retry_after, body in refused:
        assert retry_after is not None and int(retry_after) >= 1
        assert body["error"]["code"] == "UNAVAILABLE"
        assert "Traceback" not in body["error"]["message"] and "127.0.0.1" not in body["error"]["message"]

    # Every order the gateway answered is still there after the restart.
    placed = [a for a in load.answers if a[2] == 200]
    for member, _, _, _, body in placed:
        order = body["order"]
        got = shop.call("GET", f"/v1/orders/{order['order_id']}", token=tokens[member])
        assert got.status_code == 200, got.text
        assert got.json()["order"]["order_id"] == order["order_id"]
        assert got.json()["order"]["lines"][0]["sku_id"] == sku

    # A refused order retried with its key is placed once: the same order on a replay.
    for member, key, _, _, _ in refused[:8]:
        retry = {"idempotency_key": key, "lines": [{"sku_id": sku, "quantity": 1}]}
        first = shop.call("POST", "/v1/orders", token=tokens[member], json=retry)
        assert first.status_code == 200, first.text
        again = shop.call("POST", "/v1/orders", token=tokens[member], json=retry)
        assert again.json()["order"]["order_id"] == first.json()["order"]["order_id"]
