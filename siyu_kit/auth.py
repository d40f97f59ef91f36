"""Bearer tokens. The member service issues them; the gateway verifies them locally.

HS256 with a secret shared by the member service and the gateway (SIYU_JWT_SECRET).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from siyu_kit.errors import Unauthenticated

ACCESS_TTL_S = 2 * 3600
REFRESH_TTL_S = 30 * 24 * 3600
STAFF_TTL_S = 12 * 3600


@dataclass(frozen=True)
class TokenClaims:
    kind: str  # "member", "staff" or "refresh"
    subject: str
    merchant_id: str
    roles: tuple[str, ...] = ()
    expires_at: int = 0


def issue(secret: str, claims: TokenClaims, ttl_s: int) -> str:
    now = int(time.time())
    payload = {"typ": claims.kind, "sub": claims.subject, "mid": claims.merchant_id,
               "iat": now, "exp": now + ttl_s}
    if claims.roles:
        payload["roles"] = list(claims.roles)
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
    return TokenClaims(kind=payload["typ"], subject=payload["sub"], merchant_id=payload["mid"],
                       roles=tuple(payload.get("roles", ())), expires_at=payload["exp"])
