"""Who is calling: the channel API key (resolved by the member service, cached) and the
bearer token (verified locally), turned into the RequestContext the services receive.

The merchant comes from the key or the staff token only, never from the request.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import grpc
from siyu.member.v1 import member_pb2

from siyu_kit import access, auth as tokens
from siyu_kit.context import RequestContext
from siyu_kit.errors import DomainError, Unauthenticated
from siyu_kit.protos import CHANNEL_NAME

from gateway.errors import ApiError, from_rpc_error

KNOWN_TTL_S = 30.0
UNKNOWN_TTL_S = 5.0
MAX_KEY_LENGTH = 256
MAX_CACHED = 50_000
# A lookup that fails this way means "no such key"; anything else is the member service's trouble.
KEY_REJECTED = {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
                grpc.StatusCode.FAILED_PRECONDITION}


@dataclass(frozen=True)
class KeyOwner:
    merchant_id: str
    channel: str  # MINI_PROGRAM, H5 or LIVE


Lookup = Callable[[str, str], Awaitable[member_pb2.ResolveApiKeyResponse]]


class ApiKeyResolver:
    """Caches resolved keys for ~30 s and unknown keys briefly; concurrent lookups of one
    key share a single call to the member service."""

    def __init__(self, lookup: Lookup, clock: Callable[[], float] = time.monotonic,
                 known_ttl_s: float = KNOWN_TTL_S, unknown_ttl_s: float = UNKNOWN_TTL_S):
        self.lookup = lookup
        self.clock = clock
        self.known_ttl_s = known_ttl_s
        self.unknown_ttl_s = unknown_ttl_s
        self._cache: dict[str, tuple[float, KeyOwner | None]] = {}
        self._pending: dict[str, asyncio.Future] = {}

    async def resolve(self, api_key: str, request_id: str) -> KeyOwner | None:
        now = self.clock()
        cached = self._cache.get(api_key)
        if cached is not None and cached[0] > now:
            return cached[1]
        pending = self._pending.get(api_key)
        if pending is not None:
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._pending[api_key] = future
        try:
            owner = await self._lookup(api_key, request_id)
            future.set_result(owner)
            return owner
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved here, so a future nobody awaits stays quiet
            raise
        finally:
            del self._pending[api_key]

    async def _lookup(self, api_key: str, request_id: str) -> KeyOwner | None:
        try:
            reply = await self.lookup(api_key, request_id)
        except grpc.RpcError as error:
            if error.code() not in KEY_REJECTED:
                raise from_rpc_error(error) from None
            owner = None
        else:
            channel = CHANNEL_NAME.get(reply.channel, "")
            owner = KeyOwner(reply.merchant_id, channel) if reply.merchant_id and channel else None
        if len(self._cache) >= MAX_CACHED:
            now = self.clock()
            for key in [k for k, (exp, _) in self._cache.items() if exp <= now] or list(self._cache)[:1000]:
                self._cache.pop(key, None)
        ttl = self.known_ttl_s if owner else self.unknown_ttl_s
        self._cache[api_key] = (self.clock() + ttl, owner)
        return owner


def bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return ""
    return token.strip()


@dataclass(frozen=True)
class Credentials:
    api_key: str = ""
    bearer: str = ""


async def identify(rule: access.Rule, creds: Credentials, request_id: str, resolver: ApiKeyResolver,
                   jwt_secret: str) -> RequestContext:
    """The caller's context for a route's access rule; ApiError 401/403 when it falls short."""
    ctx = RequestContext(request_id=request_id)
    try:
        if rule.access == "PUBLIC":
            return ctx
        if rule.access in ("CHANNEL", "MEMBER"):
            if not creds.api_key:
                raise Unauthenticated("the X-Api-Key header is required", reason="API_KEY_MISSING")
            owner = None
            if len(creds.api_key) <= MAX_KEY_LENGTH:
                owner = await resolver.resolve(creds.api_key, request_id)
            if owner is None:
                raise Unauthenticated("the API key is not valid", reason="API_KEY_INVALID")
            ctx = RequestContext(request_id=request_id, merchant_id=owner.merchant_id, channel=owner.channel)
            if rule.access == "MEMBER":
                if not creds.bearer:
                    raise Unauthenticated("a member bearer token is required", reason="TOKEN_MISSING")
                claims = tokens.verify(jwt_secret, creds.bearer, kind="member")
                if claims.merchant_id != owner.merchant_id:
                    raise Unauthenticated("the token belongs to another merchant", reason="TOKEN_MERCHANT")
                ctx = RequestContext(request_id=request_id, merchant_id=owner.merchant_id, channel=owner.channel,
                                     caller_kind="member", caller_id=claims.subject)
        elif rule.access == "STAFF":
            if not creds.bearer:
                raise Unauthenticated("a staff bearer token is required", reason="TOKEN_MISSING")
            claims = tokens.verify(jwt_secret, creds.bearer, kind="staff")
            ctx = RequestContext(request_id=request_id, merchant_id=claims.merchant_id, caller_kind="staff",
                                 caller_id=claims.subject, roles=claims.roles)
        else:
            raise ApiError("NOT_FOUND", "no such route")
        # The same rule the services enforce: roles (OWNER always allowed), member, channel.
        access.check(rule, ctx)
    except DomainError as error:
        raise ApiError(error.code.name, error.message, error.reason or error.code.name) from None
    return ctx
