"""Token buckets: burst twice the rate, refill at the rate, Retry-After from the deficit;
and the gateway's limits per caller."""
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, strategies as st
from starlette.requests import Request

from gateway.app import Gateway, GatewaySettings, client_address
from gateway.errors import ApiError
from gateway.ratelimit import RateLimiter, retry_after_header
from siyu_kit.context import RequestContext


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_burst_then_refill():
    clock = Clock()
    limiter = RateLimiter(5, clock=clock)
    assert [limiter.take("k") for _ in range(10)] == [0.0] * 10  # burst = 2 × 5
    wait = limiter.take("k")
    assert 0 < wait <= 0.2
    assert retry_after_header(wait) == "1"
    clock.now += 0.2
    assert limiter.take("k") == 0.0
    assert limiter.take("k") > 0


def test_keys_are_independent():
    clock = Clock()
    limiter = RateLimiter(1, clock=clock)
    assert limiter.take("a") == 0.0 and limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    assert limiter.take("b") == 0.0


def test_zero_rate_disables():
    limiter = RateLimiter(0)
    assert all(limiter.take("k") == 0.0 for _ in range(1000))


@given(rate=st.integers(min_value=1, max_value=500), elapsed=st.floats(min_value=0, max_value=10),
       attempts=st.integers(min_value=0, max_value=3000))
def test_never_more_than_burst_plus_refill(rate, elapsed, attempts):
    clock = Clock()
    limiter = RateLimiter(rate, clock=clock)
    allowed = sum(limiter.take("k") == 0.0 for _ in range(attempts))
    clock.now += elapsed
    allowed += sum(limiter.take("k") == 0.0 for _ in range(attempts))
    assert allowed <= 2 * rate + rate * elapsed + 1e-6
    assert allowed >= min(attempts, 2 * rate)  # the first burst is never refused


def test_forgets_refilled_buckets_when_full():
    clock = Clock()
    limiter = RateLimiter(10, clock=clock)
    limiter.MAX_BUCKETS = 3
    for key in "abc":
        limiter.take(key)
    clock.now += 10
    limiter.take("d")
    assert set(limiter._buckets) == {"d"}


# The gateway's limits per caller: staff users too, each on their own allowance.

def _gateway(**settings):
    return Gateway(replace(GatewaySettings.load(), **settings))


def test_staff_routes_are_limited_per_staff_user_with_retry_after():
    gateway = _gateway(staff_rps=2)
    route = next(r for r in gateway.table.routes if r.rule.access == "STAFF")
    alice = RequestContext(merchant_id="mch_a", caller_kind="staff", caller_id="stf_alice", roles=("OWNER",))
    bob = RequestContext(merchant_id="mch_a", caller_kind="staff", caller_id="stf_bob", roles=("OWNER",))
    for _ in range(4):  # the burst: twice the rate
        gateway._rate_limit(route.rule, None, alice)
    with pytest.raises(ApiError) as caught:
        gateway._rate_limit(route.rule, None, alice)
    assert (caught.value.http_status, caught.value.reason) == (429, "RATE_LIMITED")
    assert caught.value.headers["Retry-After"] == "1"
    gateway._rate_limit(route.rule, None, bob)


def test_client_address_is_the_peer_unless_proxies_are_trusted():
    def request(forwarded=None):
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
        return Request({"type": "http", "headers": headers, "client": ("10.1.2.3", 5555)})

    assert client_address(request("1.1.1.1"), 0) == "10.1.2.3"  # a header anyone can write
    assert client_address(request("1.1.1.1, 203.0.113.5"), 1) == "203.0.113.5"
    assert client_address(request("1.1.1.1, 203.0.113.5, 10.0.0.2"), 2) == "203.0.113.5"
    assert client_address(request(), 1) == "10.1.2.3"
