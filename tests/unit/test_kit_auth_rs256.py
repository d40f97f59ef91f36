"""RS256 member and staff tokens: the member service signs with its private key, the
gateway verifies with public keys only (a JWKS), and serves them."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from functools import cache

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
import httpx

from siyu_kit import auth
from siyu_kit.auth import TokenClaims
from siyu_kit.errors import Unauthenticated

from services.member.application.sessions import Sessions
from tests.fakes.member import FakeMembers, FakeRefreshTokens, FakeStaff


@cache
def pem(n: int = 0) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def signer(n: int = 0) -> auth.TokenKeys:
    return auth.rs256_keys(pem(n))


def jwks_of(*signers: auth.TokenKeys) -> str:
    return json.dumps({"keys": [k for s in signers for k in s.jwks()["keys"]]})


def _reason(call) -> str:
    with pytest.raises(Unauthenticated) as caught:
        call()
    return caught.value.reason


def test_rs256_tokens_verify_with_the_public_keys_only():
    private = signer()
    public = auth.rs256_keys(jwks=jwks_of(private))
    assert public.private is None and set(public.public) == {private.kid}
    token = auth.issue(private, TokenClaims("member", "mem_1", "mch_1", version=2), 60)
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "kid": private.kid, "typ": "JWT"}
    claims = auth.verify(public, token, "member")
    assert (claims.subject, claims.merchant_id, claims.version) == ("mem_1", "mch_1", 2)
    with pytest.raises(ValueError):
        auth.issue(public, TokenClaims("member", "mem_1", "mch_1"), 60)


def test_the_jwks_serves_no_private_part_and_a_stable_kid():
    document = signer().jwks()
    assert [set(k) for k in document["keys"]] == [{"kty", "n", "e", "kid", "alg", "use"}]
    assert signer().kid == auth.rs256_keys(pem(0)).kid  # the kid is the key's thumbprint


def test_rs256_verifier_refuses_hs256_other_keys_and_unknown_kids():
    private = signer()
    public = auth.rs256_keys(jwks=jwks_of(private))
    hs256 = auth.issue("a-shared-secret-of-at-least-32-bytes!", TokenClaims("member", "mem_1", "mch_1"), 60)
    assert _reason(lambda: auth.verify(public, hs256, "member")) == "TOKEN_INVALID"
    other = auth.issue(signer(1), TokenClaims("member", "mem_1", "mch_1"), 60)
    assert _reason(lambda: auth.verify(public, other, "member")) == "TOKEN_INVALID"
    # Another key under the known kid: the signature does not hold.
    header = {"kid": private.kid}
    now = int(time.time())
    body = {"typ": "member", "sub": "mem_1", "mid": "mch_1", "iat": now, "exp": now + 60}
    forged = jwt.encode(body, signer(1).private, algorithm="RS256", headers=header)
    assert _reason(lambda: auth.verify(public, forged, "member")) == "TOKEN_INVALID"
    # The public key used as an HMAC secret (algorithm confusion) is not accepted.
    public_pem = private.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'kid': private.kid}).encode())}.{b64(json.dumps(body).encode())}"
    confused = f"{signing_input}.{b64(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())}"
    assert _reason(lambda: auth.verify(public, confused, "member")) == "TOKEN_INVALID"
    expired = auth.issue(private, TokenClaims("member", "mem_1", "mch_1"), -10)
    assert _reason(lambda: auth.verify(public, expired, "member")) == "TOKEN_EXPIRED"


def test_rotation_verifies_the_old_and_the_new_key(tmp_path):
    old, new = signer(0), signer(1)
    path = tmp_path / "jwks.json"
    path.write_text(jwks_of(new, old))
    public = auth.rs256_keys(jwks=str(path))
    for key in (old, new):
        assert auth.verify(public, auth.issue(key, TokenClaims("staff", "stf_1", "mch_1", ("OWNER",)), 60),
                           "staff").roles == ("OWNER",)


def test_keys_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("SIYU_JWT_PRIVATE_KEY", raising=False)
    monkeypatch.delenv("SIYU_JWT_JWKS", raising=False)
    assert auth.keys_from_env("the-secret") == "the-secret"
    monkeypatch.setenv("SIYU_JWT_JWKS", jwks_of(signer()))
    assert isinstance(auth.keys_from_env("the-secret"), auth.TokenKeys)
    for bad in ('{"keys": []}', "not json", "/no/such/file"):
        with pytest.raises(ValueError):
            auth.rs256_keys(jwks=bad)
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    with pytest.raises(ValueError):
        auth.rs256_keys(small)


async def test_the_member_service_signs_access_and_refresh_tokens_rs256():
    private = signer()
    sessions = Sessions(private, FakeStaff(), FakeMembers(), FakeRefreshTokens())
    issued = await sessions.issue("mch_1", "mem_1", 3)
    public = auth.rs256_keys(jwks=jwks_of(private))
    assert auth.verify(public, issued.access_token, auth.MEMBER).version == 3
    assert jwt.get_unverified_header(issued.refresh_token)["alg"] == "RS256"
    with pytest.raises(Unauthenticated):
        auth.verify("any-hs256-secret-of-32-bytes-or-more", issued.access_token, auth.MEMBER)


async def test_the_gateway_serves_its_public_keys(monkeypatch):
    from gateway.app import create_app
    from siyu_kit.config import GatewaySettings

    async def get(method: str = "GET") -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(GatewaySettings.load()))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.request(method, "/.well-known/jwks.json")

    private = signer()
    monkeypatch.setenv("SIYU_JWT_JWKS", jwks_of(private))
    monkeypatch.delenv("SIYU_JWT_PRIVATE_KEY", raising=False)
    served = await get()
    assert served.status_code == 200 and served.json() == private.jwks()
    assert (await get("POST")).status_code == 405
    monkeypatch.delenv("SIYU_JWT_JWKS")
    assert (await get()).json() == {"keys": []}


async def test_the_gateway_admits_rs256_member_and_staff_tokens_and_refuses_hs256_ones():
    from gateway.auth import ApiKeyResolver, Credentials, identify
    from gateway.errors import ApiError
    from siyu.member.v1 import member_pb2
    from siyu_kit.access import Rule

    async def lookup(api_key, request_id):
        return member_pb2.ResolveApiKeyResponse(merchant_id="mch_1", channel=2)

    private = signer()
    public = auth.rs256_keys(jwks=jwks_of(private))
    resolver = ApiKeyResolver(lookup)
    member = auth.issue(private, TokenClaims("member", "mem_1", "mch_1"), 60)
    ctx = await identify(Rule("MEMBER"), Credentials(api_key="key", bearer=member), "req_1", resolver, public)
    assert (ctx.caller_kind, ctx.caller_id, ctx.merchant_id) == ("member", "mem_1", "mch_1")
    staff = auth.issue(private, TokenClaims("staff", "stf_1", "mch_1", ("OWNER",)), 60)
    ctx = await identify(Rule("STAFF", ("OPERATOR",)), Credentials(bearer=staff), "req_1", resolver, public)
    assert ctx.roles == ("OWNER",)
    hs256 = auth.issue("a-shared-secret-of-at-least-32-bytes!", TokenClaims("staff", "stf_1", "mch_1", ("OWNER",)), 60)
    with pytest.raises(ApiError) as refused:
        await identify(Rule("STAFF"), Credentials(bearer=hs256), "req_1", resolver, public)
    assert (refused.value.http_status, refused.value.reason) == (401, "TOKEN_INVALID")
