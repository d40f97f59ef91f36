"""Bearer tokens. The member service issues them; the gateway verifies them locally.

HS256 with a secret shared by the member service and the gateway (SIYU_JWT_SECRET).
Every token carries the token version (`ver`) of its subject at issue time: the member
service bumps a subject's version when its access must end (staff roles or password
changed, user disabled, logout), and the gateway refuses a token whose version is no
longer the subject's. Refresh tokens also carry an id (`jti`), stored by the member
service so each one is used once.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from siyu_kit.errors import Unauthenticated

ACCESS_TTL_S = 2 * 3600
REFRESH_TTL_S = 30 * 24 * 3600
STAFF_TTL_S = 15 * 60
STAFF_REFRESH_TTL_S = 12 * 3600

# Kinds of token: what each one is good for.
MEMBER = "member"
STAFF = "staff"
REFRESH = "refresh"  # a member's refresh token
STAFF_REFRESH = "staff_refresh"


@dataclass(frozen=True)
class TokenClaims:
    kind: str  # MEMBER, STAFF, REFRESH or STAFF_REFRESH
    subject: str
    merchant_id: str
    roles: tuple[str, ...] = ()
    expires_at: int = 0
    version: int = 0  # the subject's token version at issue; 0 when the token has none
    token_id: str = ""  # refresh tokens only


def issue(secret: str, claims: TokenClaims, ttl_s: int) -> str:
    now = int(time.time())
    payload = {"typ": claims.kind, "sub": claims.subject, "mid": claims.merchant_id,
               "iat": now, "exp": now + ttl_s}
    if claims.roles:
        payload["roles"] = list(claims.roles)
    if claims.version:
        payload["ver"] = claims.version
    if claims.token_id:
        payload["jti"] = claims.token_id
    return jwt.encode(payload, secret, algorithm="HS256")


def verify(secret: str, token: str, kind: str) -> TokenClaims:
    try:
        payload = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp", "sub", "mid", "typ"]})
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated("the token has expired", reason="TOKEN_EXPIRED") from exc
    except jwt.PyJWTError as exc:
        raise Unauthenticated("the token is not valid", reason="TOKEN_INVALID") from exc
    if payload.get("typ") != kind:
        raise Unauthenticated(f"a {kind} token is required", reason="TOKEN_KIND")
    version = payload.get("ver", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise Unauthenticated("the token is not valid", reason="TOKEN_INVALID")
    return TokenClaims(kind=payload["typ"], subject=payload["sub"], merchant_id=payload["mid"],
                       roles=tuple(payload.get("roles", ())), expires_at=payload["exp"], version=version,
                       token_id=str(payload.get("jti", "")))
