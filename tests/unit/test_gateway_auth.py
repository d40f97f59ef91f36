"""Identity at the edge: key cache, bearer parsing, and the access rule per route kind."""
from __future__ import annotations

import asyncio

import grpc
import pytest
from siyu.common.v1 import common_pb2
from siyu.member.v1 import member_pb2

from gateway.auth import ApiKeyResolver, Credentials, bearer_token, identify
from gateway.errors import ApiError
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
