"""The gateway under load, without servers: rate-limit buckets shared by worker processes
behave as one process's buckets and hold across processes; the in-flight bound answers
the excess at once with 503, Retry-After and the JSON error body, and never counts the
live-room streams or the operations paths."""
from __future__ import annotations

import asyncio
import json
import multiprocessing

from hypothesis import given, settings, strategies as st

from gateway.overload import MAX_RETRY_AFTER_S, InFlightLimit
from gateway.ratelimit import RateLimiter, SharedRateLimiter


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@settings(max_examples=40, deadline=None)
@given(rate=st.sampled_from([0.5, 1, 5, 20]),
       steps=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.floats(0, 3)), max_size=60))
def test_shared_buckets_answer_as_one_process_does(tmp_path_factory, rate, steps):
    clock = Clock()
    path = tmp_path_factory.mktemp("limits") / "table"
    own, shared = RateLimiter(rate, clock=clock), SharedRateLimiter(rate, str(path), clock=clock, slots=64)
    for key, dt in steps:
        clock.now += dt
        assert shared.take(key) == own.take(key)


def _take_all(path: str, count: int, out) -> None:
    limiter = SharedRateLimiter(5, path, clock=lambda: 1000.0)  # a stopped clock: no refill
    out.put(sum(1 for _ in range(count) if limiter.take("member:mem_1") == 0.0))


def test_two_processes_share_one_members_bucket(tmp_path):
    path = str(tmp_path / "table")
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    workers = [ctx.Process(target=_take_all, args=(path, 20, out)) for _ in range(2)]
    for w in workers:
        w.start()
    allowed = [out.get(timeout=30) for _ in workers]
    for w in workers:
        w.join(timeout=30)
    # Burst 10 (twice the rate) for the member, whichever process took them; each process
    # on its own would have allowed 10.
    assert sum(allowed) == 10


def test_a_full_table_takes_over_refilled_buckets_first(tmp_path):
    clock = Clock()
    limiter = SharedRateLimiter(1, str(tmp_path / "table"), clock=clock, slots=4)
    for key in "abcd":
        limiter.take(key)
        limiter.take(key)
    assert limiter.take("a") > 0  # "a" is empty and remembered
    clock.now += 10  # every bucket has refilled: their slots hold nothing worth keeping
    for key in "efgh":
        assert limiter.take(key) == 0.0
    assert limiter.take("a") == 0.0


async def _call(app, path: str) -> tuple[int, dict, bytes]:
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app({"type": "http", "method": "GET", "path": path, "headers": [], "state": {"request_id": "req_1"}},
              receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


def held_until(release: asyncio.Event, entered: asyncio.Event):
    """An app that signals `entered` and answers 200 only once `release` is set."""
    async def held(scope, receive, send):
        entered.set()
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})
    return held


async def test_the_request_over_the_bound_is_answered_at_once_and_streams_are_not_counted():
    release, entered = asyncio.Event(), asyncio.Event()
    held = held_until(release, entered)
    # The delay drawn is the shortest: the spread has a test of its own.
    app = InFlightLimit(held, limit=1, draw=lambda shortest, longest: shortest)
    first = asyncio.create_task(_call(app, "/v1/me"))
    await entered.wait()

    status, headers, body = await _call(app, "/v1/products")
    assert status == 503 and headers["retry-after"] == "1"
    error = json.loads(body)["error"]
    assert (error["code"], error["reason"], error["status"], error["request_id"]) == \
        ("UNAVAILABLE", "OVERLOADED", 503, "req_1")

    # A live-room stream and the operations paths pass while the slot is taken.
    for path in ("/v1/live-sessions/liv_1/events", "/healthz", "/readyz"):
        entered.clear()
        passing = asyncio.create_task(_call(app, path))
        await entered.wait()
        passing.cancel()
    release.set()
    assert (await first)[0] == 200
    assert app.in_flight == 0
    assert (await _call(app, "/v1/products"))[0] == 200


async def test_a_crowd_takes_at_most_half_the_slots_and_the_rest_stay_for_everyone_else():
    release, entered = asyncio.Event(), asyncio.Event()
    held = held_until(release, entered)
    app = InFlightLimit(held, limit=2)
    press = asyncio.create_task(_call(app, "/v1/flash-sales/fls_1:buy"))
    await entered.wait()
    # A second press finds the crowd's half taken, though a slot is free.
    assert (await _call(app, "/v1/flash-sales/fls_1:buy"))[0] == 503
    entered.clear()
    paying = asyncio.create_task(_call(app, "/v1/orders/ord_1:pay"))
    await entered.wait()
    assert app.in_flight == 2 and app.crowd_in_flight == 1
    release.set()
    assert [(await press)[0], (await paying)[0]] == [200, 200]
    assert app.in_flight == app.crowd_in_flight == 0


def test_the_more_are_refused_the_wider_the_delays_they_are_told():
    now = [100.0]
    draws = []

    def draw(low, high):
        draws.append((low, high))
        return high

    app = InFlightLimit(None, limit=10, clock=lambda: now[0], draw=draw)
    # A few refusals: come back in a second.
    assert [app.retry_after_s() for _ in range(5)] == [1] * 5 and draws == []
    # Forty refusals in one second: four bounds' worth, so 1 to 5 s, drawn for each.
    delays = [app.retry_after_s() for _ in range(35)]
    assert delays[-1] == 5 and draws[-1] == (1, 5)
    # The next second still remembers them; a quiet second later it is 1 s again.
    now[0] = 101.2
    assert app.retry_after_s() == 5
    now[0] = 103.0
    assert app.retry_after_s() == 1
    # Never longer than the cap, however many.
    assert max(app.retry_after_s() for _ in range(10_000)) == MAX_RETRY_AFTER_S
