"""Trust between processes: identity metadata counts only with an assertion signed by a peer.

Whoever sends identity metadata (the gateway for an end caller, a service calling another,
a tool) adds `x-siyu-assertion`: a short-lived JWT (HS256, `SIYU_INTERNAL_KEY`) naming its
issuer and a digest of every identity header of the call. A service accepts identity
headers only with such an assertion that is valid, unexpired and matches them; a pod that
does not hold the key cannot act as a merchant, staff user, member or service.

`SIYU_INTERNAL_KEY` is `kid:secret[,kid:secret…]`: the first entry signs, every entry
verifies (the token names its kid), so a key is rotated by putting a new one first, then
dropping the old one once every process has the new list.
"""
from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass
from functools import cache

import grpc

from siyu_kit.errors import Unauthenticated

MD_ASSERTION = "x-siyu-assertion"
# The identity headers an assertion binds (siyu_kit.context's names, in this order).
MD_REQUEST_ID = "x-request-id"
IDENTITY_HEADERS = ("x-siyu-merchant", "x-siyu-channel", "x-siyu-caller", "x-siyu-roles", "x-siyu-service",
                    "x-siyu-client-address")
BOUND_HEADERS = IDENTITY_HEADERS + (MD_REQUEST_ID,)

# Development and tests only; refused in the production profile (siyu_kit.config).
DEV_INTERNAL_KEY = "dev:dev-only-internal-key-change-me-in-production"
TTL_S = 30
# Clocks of two pods may differ a little.
LEEWAY_S = 5
ALGORITHM = "HS256"
_CACHE_SIZE = 1024


@dataclass(frozen=True)
class Keys:
    signing_kid: str
    by_kid: dict[str, bytes]


def parse_keys(raw: str) -> Keys:
    """`kid:secret,kid:secret`; a bare secret is kid `k1`."""
    by_kid: dict[str, bytes] = {}
    first = ""
    for entry in (e.strip() for e in raw.split(",")):
        if not entry:
            continue
        kid, sep, secret = entry.partition(":")
        if not sep:
            kid, secret = "k1", entry
        if not kid or len(secret) < 32:
            raise ValueError("SIYU_INTERNAL_KEY entries are kid:secret with a secret of at least 32 characters")
        by_kid.setdefault(kid, secret.encode())
        first = first or kid
    if not first:
        raise ValueError("SIYU_INTERNAL_KEY is empty")
    return Keys(first, by_kid)


@cache
def keys() -> Keys:
    return parse_keys(os.environ.get("SIYU_INTERNAL_KEY", DEV_INTERNAL_KEY))


_issuer = "client"


def set_issuer(name: str) -> None:
    """The name this process signs as (the gateway, a service, a tool)."""
    global _issuer
    _issuer = name


def digest(pairs) -> str:
    """A digest of the bound headers of `pairs` (absent ones count as empty)."""
    values = dict.fromkeys(BOUND_HEADERS, "")
    for key, value in pairs:
        if key in values:
            values[key] = value
    text = "\n".join(f"{k}={values[k]}" for k in BOUND_HEADERS)
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()[:18]).decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@cache
def _header(kid: str) -> str:
    return _b64(json.dumps({"alg": ALGORITHM, "kid": kid, "typ": "JWT"}, separators=(",", ":")).encode())


def _mac(secret: bytes, signing_input: str) -> str:
    return _b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


def sign(pairs, issuer: str = "", key_set: Keys | None = None, now: float | None = None) -> str:
    """The assertion for the bound headers among `pairs`, from `issuer` (default: this process).
    A compact JWS (RFC 7515), HS256, built here rather than by PyJWT: it is made on every
    call between processes, and this is several times cheaper."""
    key_set = key_set or keys()
    issued = int(now if now is not None else time.time())
    payload = {"iss": issuer or _issuer, "iat": issued, "exp": issued + TTL_S, "dig": digest(pairs)}
    signing_input = f"{_header(key_set.signing_kid)}.{_b64(json.dumps(payload, separators=(',', ':')).encode())}"
    return f"{signing_input}.{_mac(key_set.by_kid[key_set.signing_kid], signing_input)}"


def signed(pairs, issuer: str = "") -> tuple[tuple[str, str], ...]:
    """`pairs` without any assertion they carried, plus a fresh one."""
    plain = tuple((k, v) for k, v in pairs if k != MD_ASSERTION)
    return plain + ((MD_ASSERTION, sign(plain, issuer)),)


def unverified() -> Unauthenticated:
    return Unauthenticated("the caller's identity is not vouched for by a trusted peer", reason="PEER_UNVERIFIED")


# token → (expiry, digest, issuer): a token seen before is not decoded again. A service
# calling several others for one request sends the same token for the same identity
# within a second, and retries resend theirs.
_verified: dict[str, tuple[int, str, str]] = {}


def _claims(token: str, key_set: Keys) -> tuple[int, str, str]:
    """(expiry, digest, issuer) of a token whose signature holds; raises otherwise."""
    try:
        header_b64, payload_b64, mac = token.split(".")
        header = json.loads(_unb64(header_b64))
        kid = header.get("kid") if isinstance(header, dict) else None
        secret = key_set.by_kid.get(kid) if isinstance(kid, str) else None
        if header.get("alg") != ALGORITHM or secret is None:
            raise unverified()
        if not hmac.compare_digest(mac, _mac(secret, f"{header_b64}.{payload_b64}")):
            raise unverified()
        payload = json.loads(_unb64(payload_b64))
        expires, issued, dig, iss = payload["exp"], payload["iat"], payload["dig"], payload["iss"]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise unverified() from exc
    if (not all(isinstance(v, int) and not isinstance(v, bool) for v in (expires, issued))
            or not isinstance(dig, str) or not isinstance(iss, str) or expires - issued > 2 * TTL_S):
        raise unverified()
    return expires, dig, iss


def verify(metadata, key_set: Keys | None = None, now: float | None = None) -> str:
    """The issuer that vouches for the identity headers of `metadata`; "" for a call that
    carries none (health, reflection, an anonymous call). Raises Unauthenticated
    (PEER_UNVERIFIED) for identity headers without a valid, unexpired, matching assertion."""
    token, identity, seen = "", False, set()
    for key, value in metadata or ():
        if key == MD_ASSERTION:
            if token:
                raise unverified()
            token = value
        elif key in BOUND_HEADERS:
            if key in seen:  # two values for one header: which one was vouched for?
                raise unverified()
            seen.add(key)
            identity = identity or (key != MD_REQUEST_ID and bool(value))
    if not token:
        if identity:
            raise unverified()
        return ""
    if not isinstance(token, str):
        raise unverified()
    cached = _verified.get(token)
    if cached is None:
        cached = _claims(token, key_set or keys())
        if key_set is None:
            if len(_verified) >= _CACHE_SIZE:
                _verified.clear()
            _verified[token] = cached
    expires, dig, iss = cached
    if (now if now is not None else time.time()) > expires + LEEWAY_S or dig != digest(metadata):
        raise unverified()
    return iss


# ---- tools that hold call metadata for longer than an assertion lives -------------------
class _Details(collections.namedtuple("_Details", ("method", "timeout", "metadata", "credentials",
                                                   "wait_for_ready", "compression")), grpc.ClientCallDetails):
    pass


def _fresh(metadata):
    pairs = list(metadata or ())
    if not any(k == MD_ASSERTION for k, _ in pairs):
        return metadata
    return signed(pairs)


class Resign(grpc.UnaryUnaryClientInterceptor):
    """Signs the identity of every call anew: a script or test may build its metadata once
    and keep using it after the assertion in it has expired."""

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(_Details(details.method, details.timeout, _fresh(details.metadata), details.credentials,
                                     details.wait_for_ready, details.compression), request)


def resigning_channel(addr: str) -> grpc.Channel:
    return grpc.intercept_channel(grpc.insecure_channel(addr), Resign())
