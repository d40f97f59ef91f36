"""Identity at the edge: key cache, bearer parsing, and the access rule per route kind."""
from __future__ import annotations

import asyncio

import grpc
import pytest
from siyu.common.v1 import common_pb2
from siyu.member.v1 import member_pb2

from gateway.auth import ApiKeyResolver, Credentials, TokenVersions, bearer_token, identify
from gateway.errors import ApiError
from gateway.ratelimit import RateLimiter
from siyu_kit import auth
from siyu_kit.access import Rule

SECRET = "unit-test-secret-of-sufficient-length"


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


class Rejected(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.UNAUTHENTICATED

    def details(self):
        return "unknown key"

    def trailing_metadata(self):
        return ()


def resolver_with(keys: dict[str, str]):
    calls = []

    async def lookup(api_key, request_id):
        calls.append(api_key)
        await asyncio.sleep(0)
        if api_key not in keys:
            raise Rejected()
        return member_pb2.ResolveApiKeyResponse(merchant_id=keys[api_key], channel=common_pb2.CHANNEL_H5)
    clock = Clock()
    return ApiKeyResolver(lookup, clock=clock), calls, clock


def test_known_keys_are_cached_30s_unknown_briefly():
    async def run():
        resolver, calls, clock = resolver_with({"k1": "mch_a"})
        owner = await resolver.resolve("k1", "r")
        assert (owner.merchant_id, owner.channel) == ("mch_a", "H5")
        await resolver.resolve("k1", "r")
        assert calls == ["k1"]
        assert await resolver.resolve("nope", "r") is None
        assert await resolver.resolve("nope", "r") is None
        assert calls == ["k1", "nope"]
        clock.now += 6
        await resolver.resolve("nope", "r")
        await resolver.resolve("k1", "r")
        assert calls == ["k1", "nope", "nope"]
        clock.now += 30
        await resolver.resolve("k1", "r")
        assert calls == ["k1", "nope", "nope", "k1"]
        # Concurrent first lookups of one key share one call.
        await asyncio.gather(*(resolver.resolve("k2", "r") for _ in range(10)))
        assert calls.count("k2") == 1
    asyncio.run(run())


@pytest.mark.parametrize("header,token", [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", ""),
                                          ("Bearer", ""), (None, "")])
def test_bearer_token(header, token):
    assert bearer_token(header) == token


def _identify(rule, creds, keys=None):
    resolver, _, _ = resolver_with(keys or {"key-a": "mch_a"})
    return asyncio.run(identify(rule, creds, "req_1", resolver, SECRET))


def _token(kind, merchant, roles=()):
    return auth.issue(SECRET, auth.TokenClaims(kind, "sub_1", merchant, roles), 600)


def test_public_needs_nothing():
    ctx = _identify(Rule("PUBLIC"), Credentials())
    assert (ctx.merchant_id, ctx.caller_kind, ctx.request_id) == ("", "", "req_1")


def test_channel_and_member_contexts():
    ctx = _identify(Rule("CHANNEL"), Credentials(api_key="key-a"))
    assert (ctx.merchant_id, ctx.channel, ctx.caller_kind) == ("mch_a", "H5", "")
    assert ("x-siyu-service" not in dict(ctx.to_metadata()))
    ctx = _identify(Rule("MEMBER"), Credentials(api_key="key-a", bearer=_token("member", "mch_a")))
    assert (ctx.merchant_id, ctx.caller_kind, ctx.caller_id) == ("mch_a", "member", "sub_1")


@pytest.mark.parametrize("rule,creds,status,reason", [
    (Rule("CHANNEL"), Credentials(), 401, "API_KEY_MISSING"),
    (Rule("CHANNEL"), Credentials(api_key="other"), 401, "API_KEY_INVALID"),
    (Rule("MEMBER"), Credentials(api_key="key-a"), 401, "TOKEN_MISSING"),
    (Rule("MEMBER"), Credentials(api_key="key-a", bearer="garbage"), 401, "TOKEN_INVALID"),
    (Rule("STAFF", ("OPERATOR",)), Credentials(), 401, "TOKEN_MISSING"),
])
def test_refusals(rule, creds, status, reason):
    with pytest.raises(ApiError) as caught:
        _identify(rule, creds)
    assert (caught.value.http_status, caught.value.reason) == (status, reason)


def test_member_token_of_another_merchant_is_refused():
    with pytest.raises(ApiError) as caught:
        _identify(Rule("MEMBER"), Credentials(api_key="key-a", bearer=_token("member", "mch_b")))
    assert caught.value.reason == "TOKEN_MERCHANT"


def test_staff_roles():
    ctx = _identify(Rule("STAFF", ("OPERATOR",)), Credentials(bearer=_token("staff", "mch_s", ("OPERATOR",))))
    assert (ctx.merchant_id, ctx.caller_kind, ctx.roles, ctx.channel) == ("mch_s", "staff", ("OPERATOR",), "")
    owner = _identify(Rule("STAFF", ("FINANCE",)), Credentials(bearer=_token("staff", "mch_s", ("OWNER",))))
    assert owner.roles == ("OWNER",)
    with pytest.raises(ApiError) as caught:
        _identify(Rule("STAFF", ("FINANCE",)), Credentials(bearer=_token("staff", "mch_s", ("GUIDE",))))
    assert caught.value.http_status == 403
    with pytest.raises(ApiError) as caught:
        _identify(Rule("STAFF"), Credentials(bearer=_token("member", "mch_s")))
    assert caught.value.http_status == 401


# Unknown keys: each is a member-service lookup, so lookups are limited per client address.

def test_key_lookups_are_limited_per_address_and_cached_answers_are_free():
    async def run():
        clock = Clock()
        calls = []

        async def lookup(api_key, request_id):
            calls.append(api_key)
            raise Rejected()
        resolver = ApiKeyResolver(lookup, clock=clock, lookup_limiter=RateLimiter(1, burst=3, clock=clock))
        for i in range(3):
            assert await resolver.resolve(f"guess-{i}", "r", "203.0.113.9") is None
        with pytest.raises(ApiError) as caught:
            await resolver.resolve("guess-3", "r", "203.0.113.9")
        assert (caught.value.http_status, caught.value.reason) == (429, "RATE_LIMITED")
        assert caught.value.headers["Retry-After"] == "1"
        assert calls == ["guess-0", "guess-1", "guess-2"]  # the refused guess cost no lookup
        # A cached (negative) answer costs no lookup, so it is not limited.
        assert await resolver.resolve("guess-0", "r", "203.0.113.9") is None
        # Another address has its own allowance; time refills this one.
        assert await resolver.resolve("guess-4", "r", "198.51.100.1") is None
        clock.now += 1
        assert await resolver.resolve("guess-5", "r", "203.0.113.9") is None
    asyncio.run(run())


# Token versions: a token whose subject moved on is refused within the cache period.

def versions_with(current: dict[str, tuple[int, bool]], ttl_s: float = 2.0):
    calls = []
    clock = Clock()

    async def lookup(subjects, request_id):
        calls.extend(subject_id for _, subject_id in subjects)
        await asyncio.sleep(0)
        return [current.get(subject_id, (0, False)) for _, subject_id in subjects]
    return TokenVersions(lookup, ttl_s=ttl_s, clock=clock, batch_window_s=0), calls, clock


def _versioned(kind, subject, version, roles=()):
    return auth.issue(SECRET, auth.TokenClaims(kind, subject, "mch_a", roles, version=version), 600)


def _identify_with(versions, rule, creds):
    resolver, _, _ = resolver_with({"key-a": "mch_a"})
    return asyncio.run(identify(rule, creds, "req_1", resolver, SECRET, versions))


def test_a_token_of_an_older_version_is_refused_once_the_cache_expires():
    current = {"stf_1": (3, True)}
    versions, calls, clock = versions_with(current)

    async def run():
        claims = auth.verify(SECRET, _versioned("staff", "stf_1", 3, ("OWNER",)), "staff")
        await versions.check(claims, "r")
        current["stf_1"] = (4, True)  # demoted
        await versions.check(claims, "r")  # still within the cache period
        assert calls == ["stf_1"]
        clock.now += 2.01
        with pytest.raises(Exception) as caught:
            await versions.check(claims, "r")
        assert caught.value.reason == "TOKEN_REVOKED"
        assert calls == ["stf_1", "stf_1"]
        # Concurrent checks of one subject share one lookup.
        clock.now += 2.01
        new = auth.verify(SECRET, _versioned("staff", "stf_1", 4), "staff")
        await asyncio.gather(*(versions.check(new, "r") for _ in range(20)))
        assert calls == ["stf_1"] * 3
    asyncio.run(run())


@pytest.mark.parametrize("current", [{"stf_1": (2, True)}, {"stf_1": (1, False)}, {}])
def test_staff_token_is_revoked_when_version_moved_user_disabled_or_gone(current):
    versions, _, _ = versions_with(current)
    with pytest.raises(ApiError) as caught:
        _identify_with(versions, Rule("STAFF", ("OPERATOR",)),
                       Credentials(bearer=_versioned("staff", "stf_1", 1, ("OPERATOR",))))
    assert (caught.value.http_status, caught.value.reason) == (401, "TOKEN_REVOKED")


def test_current_tokens_pass_and_carry_the_client_address():
    versions, calls, _ = versions_with({"stf_1": (1, True), "mem_1": (0, True)})
    ctx = _identify_with(versions, Rule("STAFF", ("OPERATOR",)),
                         Credentials(bearer=_versioned("staff", "stf_1", 1, ("OPERATOR",)), address="10.0.0.7"))
    assert (ctx.caller_id, ctx.client_address) == ("stf_1", "10.0.0.7")
    ctx = _identify_with(versions, Rule("MEMBER"), Credentials(api_key="key-a", bearer=_versioned("member", "mem_1", 0)))
    assert ctx.caller_id == "mem_1"
    assert calls == ["stf_1", "mem_1"]


def test_roles_are_checked_before_any_version_lookup():
    versions, calls, _ = versions_with({"stf_1": (1, True)})
    with pytest.raises(ApiError) as caught:
        _identify_with(versions, Rule("STAFF", ("FINANCE",)), Credentials(bearer=_versioned("staff", "stf_1", 1, ("GUIDE",))))
    assert caught.value.http_status == 403 and calls == []


def test_a_token_newer_than_the_cached_version_is_checked_afresh():
    current = {"stf_1": (1, True)}
    versions, calls, _ = versions_with(current)

    async def run():
        await versions.check(auth.verify(SECRET, _versioned("staff", "stf_1", 1), "staff"), "r")
        current["stf_1"] = (2, True)  # logged out, then in again at once
        await versions.check(auth.verify(SECRET, _versioned("staff", "stf_1", 2), "staff"), "r")
        assert calls == ["stf_1", "stf_1"]
        with pytest.raises(Exception) as caught:  # while the old one is refused from the cache
            await versions.check(auth.verify(SECRET, _versioned("staff", "stf_1", 1), "staff"), "r")
        assert caught.value.reason == "TOKEN_REVOKED" and len(calls) == 2
    asyncio.run(run())


def test_checks_of_many_subjects_at_once_go_out_in_one_batch():
    batches = []

    async def lookup(subjects, request_id):
        batches.append(list(subjects))
        return [(1, True)] * len(subjects)
    versions = TokenVersions(lookup, batch_window_s=0.01)

    async def run():
        tokens_ = [auth.verify(SECRET, _versioned("member", f"mem_{i % 50}", 1), "member") for i in range(200)]
        await asyncio.gather(*(versions.check(t, "r") for t in tokens_))
    asyncio.run(run())
    assert len(batches) == 1 and sorted(batches[0]) == sorted(("mch_a", f"mem_{i}") for i in range(50))


def test_a_failed_batch_fails_its_checks_without_hanging():
    async def lookup(subjects, request_id):
        return []  # an answer short of the subjects asked
    versions = TokenVersions(lookup, batch_window_s=0)

    async def run():
        with pytest.raises(ApiError) as caught:
            await asyncio.wait_for(versions.check(auth.verify(SECRET, _versioned("member", "mem_1", 1), "member"),
                                                  "r"), timeout=5)
        assert caught.value.http_status == 503
    asyncio.run(run())


# Tokens are minted when the test runs, not when it is collected: a long suite outlives them.
@pytest.mark.parametrize("bearer,kind", [
    (("member", "mch_a"), "member"),
    ("garbage", ""),
    (("member", "mch_b"), ""),  # another merchant's member
    (("staff", "mch_a", ("OWNER",)), ""),
])
def test_a_channel_route_reads_a_member_token_when_one_holds_and_ignores_any_other(bearer, kind):
    bearer = _token(*bearer) if isinstance(bearer, tuple) else bearer
    ctx = _identify(Rule("CHANNEL"), Credentials(api_key="key-a", bearer=bearer))
    assert (ctx.merchant_id, ctx.channel, ctx.caller_kind) == ("mch_a", "H5", kind)
    assert ctx.caller_id == ("sub_1" if kind else "")


def test_while_the_member_service_is_down_the_last_known_version_holds_for_a_while():
    current = {"mem_1": (1, True)}
    down = []
    calls = []
    clock = Clock()

    async def lookup(subjects, request_id):
        calls.append(len(subjects))
        if down:
            raise ApiError("UNAVAILABLE", "member service down")
        return [current[subject_id] for _, subject_id in subjects]
    versions = TokenVersions(lookup, ttl_s=2.0, clock=clock, batch_window_s=0, stale_if_error_s=60.0)

    async def run():
        claims = auth.verify(SECRET, _versioned("member", "mem_1", 1), "member")
        await versions.check(claims, "r")
        down.append(True)
        clock.now += 30  # the cache lapsed, the member service cannot answer
        await versions.check(claims, "r")
        assert len(calls) == 2
        clock.now += 33  # past the grace (expired at 2 s, trusted until 62 s): the outage answers
        with pytest.raises(ApiError) as caught:
            await versions.check(claims, "r")
        assert caught.value.code == "UNAVAILABLE"
        down.clear()
        current["mem_1"] = (2, True)  # revoked meanwhile: refused once it can be asked
        with pytest.raises(Exception) as revoked:
            await versions.check(claims, "r")
        assert revoked.value.reason == "TOKEN_REVOKED"
    asyncio.run(run())


def test_the_gateway_refuses_a_moved_version_within_two_seconds_unless_configured(monkeypatch):
    # The e2e test of a demotion sees the refusal; this is the bound it comes within.
    from dataclasses import replace

    from gateway.app import Gateway, GatewaySettings
    monkeypatch.delenv("SIYU_TOKEN_VERSION_TTL_S", raising=False)
    assert Gateway(GatewaySettings.load()).versions.ttl_s == 2.0
    assert Gateway(replace(GatewaySettings.load(), token_version_ttl_s=0.5)).versions.ttl_s == 0.5
