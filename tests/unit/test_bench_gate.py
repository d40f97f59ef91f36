"""The bench's burst gate and press answer (bench/harness.py), shared by the coupon grab
and the flash sale: every press waits at the gate and all start at the instant it opens."""
from __future__ import annotations

import time

import httpx

from bench.harness import Gate, answer


async def test_every_press_waits_for_the_gate_and_starts_after_it_opened():
    gate = Gate()
    started: list[float] = []

    async def press() -> None:
        await gate.wait()
        started.append(time.perf_counter())

    await gate.burst([press() for _ in range(50)])
    assert len(started) == 50 and min(started) >= gate.opened > 0  # nobody pressed early


async def test_an_answer_is_the_success_word_the_reason_or_the_transport_failure():
    def reply(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ok":
            return httpx.Response(200, json={})
        if request.url.path == "/down":
            raise httpx.ConnectError("refused")
        return httpx.Response(400, json={"error": {"code": "FAILED_PRECONDITION", "reason": "COUPON_SOLD_OUT"}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(reply), base_url="http://bench") as http:
        said, resp = await answer(http, "POST", "/ok", "CLAIMED")
        assert said == "CLAIMED" and resp is not None and resp.status_code == 200
        assert (await answer(http, "POST", "/full", "CLAIMED"))[0] == "COUPON_SOLD_OUT"
        assert await answer(http, "POST", "/down", "CLAIMED") == ("ConnectError", None)
