"""Bearer tokens. The member service issues them; the gateway verifies them locally.

HS256 with a secret shared by the member service and the gateway (SIYU_JWT_SECRET) by
default; with SIYU_JWT_PRIVATE_KEY the member service signs RS256 (the token names its
key's `kid`) and the gateway verifies with the public keys only (SIYU_JWT_JWKS), which it
also serves at `/.well-known/jwks.json`. Either way a process verifies one algorithm only.
Every token carries the token version (`ver`) of its subject at issue time: the member
service bumps a subject's version when its access must end (staff roles or password
changed, user disabled, logout), and the gateway refuses a token whose version is no
longer the subject's. Refresh tokens also carry an id (`jti`), stored by the member
service so each one is used once.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from base64 import urlsafe_b64encode
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class TokenKeys:
    """RS256 keys: the private key (the member service only) signs as `kid`; the public
    keys by kid verify. The gateway holds public keys only."""
    public: dict[str, Any] = field(default_factory=dict)
    private: Any = None
    kid: str = ""

    def jwks(self) -> dict:
        return {"keys": [_jwk(kid, key) for kid, key in self.public.items()]}


def _jwk(kid: str, public_key) -> dict:
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(public_key, as_dict=True)
    return {"kty": "RSA", "n": jwk["n"], "e": jwk["e"], "kid": kid, "alg": "RS256", "use": "sig"}


def thumbprint(public_key) -> str:
    """The key's RFC 7638 thumbprint: its kid, so the same key always has the same one."""
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(public_key, as_dict=True)
    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True)
    return urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).decode().rstrip("=")


def _read(value: str) -> str:
    """A setting that holds a document or the path of a file holding it."""
    text = value.strip()
    if text and not text.startswith(("{", "-----")) and Path(text).is_file():
        return Path(text).read_text()
    return text


def rs256_keys(private_pem: str = "", jwks: str = "") -> TokenKeys:
    """Keys from a PEM private key and/or a JWKS document (JSON or a file path): the
    private key's public half is always among the verifying keys."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    public: dict[str, Any] = {}
    private, kid = None, ""
    if private_pem.strip():
        private = load_pem_private_key(_read(private_pem).encode(), password=None)
        if not isinstance(private, rsa.RSAPrivateKey) or private.key_size < 2048:
            raise ValueError("SIYU_JWT_PRIVATE_KEY must be an RSA key of at least 2048 bits")
        kid = thumbprint(private.public_key())
        public[kid] = private.public_key()
    if jwks.strip():
        try:
            document = jwt.PyJWKSet.from_json(_read(jwks))
        except (jwt.PyJWTError, ValueError) as exc:
            raise ValueError(f"SIYU_JWT_JWKS is not a JWKS document or a file holding one: {exc}") from exc
        for key in document.keys:
            if key.key_type == "RSA" and key.public_key_use in (None, "sig"):
                public.setdefault(key.key_id or thumbprint(key.key), key.key)
    if not public:
        raise ValueError("SIYU_JWT_JWKS holds no RSA signing key")
    return TokenKeys(public, private, kid)


def keys_from_env(secret: str) -> "str | TokenKeys":
    """RS256 keys when SIYU_JWT_PRIVATE_KEY or SIYU_JWT_JWKS is set, else the HS256 secret."""
    return _keys(secret, os.environ.get("SIYU_JWT_PRIVATE_KEY", ""), os.environ.get("SIYU_JWT_JWKS", ""))


@functools.lru_cache(maxsize=8)
def _keys(secret: str, private_pem: str, jwks: str) -> "str | TokenKeys":
    if private_pem.strip() or jwks.strip():
        return rs256_keys(private_pem, jwks)
    return secret


def issue(secret: "str | TokenKeys", claims: TokenClaims, ttl_s: int) -> str:
    now = int(time.time())
    payload = {"typ": claims.kind, "sub": claims.subject, "mid": claims.merchant_id,
               "iat": now, "exp": now + ttl_s}
    if claims.roles:
        payload["roles"] = list(claims.roles)
    if claims.version:
        payload["ver"] = claims.version
    if claims.token_id:
        payload["jti"] = claims.token_id
    if isinstance(secret, TokenKeys):
        if secret.private is None:
            raise ValueError("these token keys can verify only: SIYU_JWT_PRIVATE_KEY is not set")
        return jwt.encode(payload, secret.private, algorithm="RS256", headers={"kid": secret.kid})
    return jwt.encode(payload, secret, algorithm="HS256")


def _key_for(secret: "str | TokenKeys", token: str):
    if not isinstance(secret, TokenKeys):
        return secret, "HS256"
    kid = jwt.get_unverified_header(token).get("kid")
    key = secret.public.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise jwt.InvalidKeyError("unknown kid")
    return key, "RS256"


def verify(secret: "str | TokenKeys", token: str, kind: str) -> TokenClaims:
    try:
        key, algorithm = _key_for(secret, token)
        payload = jwt.decode(token, key, algorithms=[algorithm], options={"require": ["exp", "sub", "mid", "typ"]})
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
