"""Who is calling: the channel API key (resolved by the member service, cached) and the
bearer token (verified locally), turned into the RequestContext the services receive.

The merchant comes from the key or the staff token only, never from the request.
"""
from __future__ import annotations

import asyncio
import hmac
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
from gateway.ratelimit import RateLimiter, retry_after_header

KNOWN_TTL_S = 30.0
UNKNOWN_TTL_S = 5.0
# How long a subject's token version is trusted: a revoked token works at most this long.
VERSION_TTL_S = 2.0
# While the member service cannot answer, the last version it gave is trusted this much
# longer: an outage delays a revocation by at most this, instead of refusing every
# signed-in call.
VERSION_STALE_IF_ERROR_S = 60.0
BATCH_WINDOW_S = 0.003
MAX_BATCH = 500
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
# (merchant id, subject id) pairs → (version, active) for each, in order.
VersionLookup = Callable[[list[tuple[str, str]], str], Awaitable[list[tuple[int, bool]]]]
_MISSING = object()


class _SharedCache:
    """Answers kept until their deadline; concurrent loads of one key share one call; the
    size is bounded (expired entries go first)."""

    def __init__(self, clock: Callable[[], float]):
        self.clock = clock
        self._cache: dict = {}
        self._pending: dict[object, asyncio.Future] = {}

    def cached(self, key):
        entry = self._cache.get(key)
        if entry is not None and entry[0] > self.clock():
            return entry[1]
        return _MISSING

    def stale(self, key, grace_s: float):
        """The value of an expired entry, if it expired less than `grace_s` ago."""
        entry = self._cache.get(key)
        if entry is not None and entry[0] + grace_s > self.clock():
            return entry[1]
        return _MISSING

    def forget(self, key) -> None:
        self._cache.pop(key, None)

    def loading(self, key) -> bool:
        return key in self._pending

    async def get(self, key, load: Callable[[], Awaitable], ttl_of: Callable[[object], float]):
        value = self.cached(key)
        if value is not _MISSING:
            return value
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            value = await load()
            self._store(key, value, ttl_of(value))
            future.set_result(value)
            return value
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved here, so a future nobody awaits stays quiet
            raise
        finally:
            del self._pending[key]

    def _store(self, key, value, ttl_s: float) -> None:
        if len(self._cache) >= MAX_CACHED:
            now = self.clock()
            for old in [k for k, (exp, _) in self._cache.items() if exp <= now] or list(self._cache)[:1000]:
                self._cache.pop(old, None)
        self._cache[key] = (self.clock() + ttl_s, value)


def _rate_limited(wait_s: float, message: str) -> ApiError:
    return ApiError("RESOURCE_EXHAUSTED", message, "RATE_LIMITED", headers={"Retry-After": retry_after_header(wait_s)})


class ApiKeyResolver:
    """Caches resolved keys for ~30 s and unknown keys briefly; concurrent lookups of one
    key share a single call to the member service. With a limiter, the lookups one client
    address may cause (keys not in the cache: mostly unknown ones) are rate limited."""

    def __init__(self, lookup: Lookup, clock: Callable[[], float] = time.monotonic,
                 known_ttl_s: float = KNOWN_TTL_S, unknown_ttl_s: float = UNKNOWN_TTL_S,
                 lookup_limiter: RateLimiter | None = None):
        self.lookup = lookup
        self.clock = clock
        self.known_ttl_s = known_ttl_s
        self.unknown_ttl_s = unknown_ttl_s
        self.lookup_limiter = lookup_limiter
        self._cache = _SharedCache(clock)

    async def resolve(self, api_key: str, request_id: str, address: str = "") -> KeyOwner | None:
        if self.lookup_limiter is not None and self._cache.cached(api_key) is _MISSING \
                and not self._cache.loading(api_key):
            wait = self.lookup_limiter.take(address or "-")
            if wait:
                raise _rate_limited(wait, "too many unknown API keys from this address; retry later")
        return await self._cache.get(api_key, lambda: self._lookup(api_key, request_id),
                                     lambda owner: self.known_ttl_s if owner else self.unknown_ttl_s)

    async def _lookup(self, api_key: str, request_id: str) -> KeyOwner | None:
        try:
            reply = await self.lookup(api_key, request_id)
        except grpc.RpcError as error:
            if error.code() not in KEY_REJECTED:
                raise from_rpc_error(error) from None
            return None
        channel = CHANNEL_NAME.get(reply.channel, "")
        return KeyOwner(reply.merchant_id, channel) if reply.merchant_id and channel else None


class TokenVersions:
    """Whether a token's version is still its subject's, asked of the member service at most
    once per subject per `ttl_s` (concurrent checks share the call). A subject whose version
    moved (roles or password changed, disabled, logged out) is refused within `ttl_s`.

    Look-ups of different subjects within `batch_window_s` go out as one call, so a crowd
    of members arriving at once (a flash sale) costs a few calls, not one each."""

    def __init__(self, lookup: VersionLookup, ttl_s: float = VERSION_TTL_S,
                 clock: Callable[[], float] = time.monotonic, batch_window_s: float = BATCH_WINDOW_S,
                 stale_if_error_s: float = VERSION_STALE_IF_ERROR_S):
        self.lookup = lookup
        self.ttl_s = ttl_s
        self.stale_if_error_s = stale_if_error_s
        self.batch_window_s = batch_window_s
        self._cache = _SharedCache(clock)
        self._batch: dict[tuple[str, str], asyncio.Future] = {}

    async def check(self, claims: tokens.TokenClaims, request_id: str) -> None:
        key = (claims.merchant_id, claims.subject)
        cached = self._cache.cached(key)
        if cached is not _MISSING and claims.version > cached[0]:
            # Versions only grow: a token newer than the cache (a login right after a bump)
            # means the cache is behind, not the token.
            self._cache.forget(key)
        try:
            version, active = await self._cache.get(key, lambda: self._queue(key, request_id), lambda _: self.ttl_s)
        except ApiError as error:
            last = self._cache.stale(key, self.stale_if_error_s)
            if error.code not in ("UNAVAILABLE", "DEADLINE_EXCEEDED") or last is _MISSING:
                raise
            version, active = last
        if not active or version != claims.version:
            raise Unauthenticated("the token has been revoked; log in again", reason="TOKEN_REVOKED")

    def _queue(self, key: tuple[str, str], request_id: str) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        if not self._batch:
            loop.call_later(self.batch_window_s, lambda: loop.create_task(self._flush(request_id)))
        future = self._batch[key] = loop.create_future()
        return future

    async def _flush(self, request_id: str) -> None:
        batch, self._batch = self._batch, {}
        keys = list(batch)
        for start in range(0, len(keys), MAX_BATCH):
            chunk = keys[start:start + MAX_BATCH]
            try:
                found = await self.lookup(chunk, request_id)
                if len(found) != len(chunk):
                    raise ApiError("UNAVAILABLE", "the token check did not answer for every token")
            except grpc.RpcError as error:
                self._fail(batch, chunk, from_rpc_error(error))
            except Exception as error:  # noqa: BLE001 - every waiter must hear of it, never hang
                self._fail(batch, chunk, error)
            else:
                for key, answer in zip(chunk, found):
                    batch[key].set_result(answer)

    @staticmethod
    def _fail(batch: dict, chunk: list, error: Exception) -> None:
        for key in chunk:
            batch[key].set_exception(error)
            batch[key].exception()  # retrieved here, so a future nobody awaits stays quiet


def bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return ""
    return token.strip()


@dataclass(frozen=True)
class Credentials:
    api_key: str = ""
    bearer: str = ""
    address: str = ""  # the client's network address


async def identify(rule: access.Rule, creds: Credentials, request_id: str, resolver: ApiKeyResolver,
                   jwt_secret: str, versions: TokenVersions | None = None,
                   platform_token: str = "") -> RequestContext:
    """The caller's context for a route's access rule; ApiError 401/403 when it falls short
    (429 when the client address causes too many key lookups)."""
    ctx = RequestContext(request_id=request_id, client_address=creds.address)
    claims = None
    try:
        if rule.access == "PUBLIC":
            return ctx
        if rule.access in ("CHANNEL", "MEMBER"):
            if not creds.api_key:
                raise Unauthenticated("the X-Api-Key header is required", reason="API_KEY_MISSING")
            owner = None
            if len(creds.api_key) <= MAX_KEY_LENGTH:
                owner = await resolver.resolve(creds.api_key, request_id, creds.address)
            if owner is None:
                raise Unauthenticated("the API key is not valid", reason="API_KEY_INVALID")
            ctx = RequestContext(request_id=request_id, merchant_id=owner.merchant_id, channel=owner.channel,
                                 client_address=creds.address)
            if rule.access == "MEMBER":
                if not creds.bearer:
                    raise Unauthenticated("a member bearer token is required", reason="TOKEN_MISSING")
                claims = tokens.verify(jwt_secret, creds.bearer, kind="member")
                if claims.merchant_id != owner.merchant_id:
                    raise Unauthenticated("the token belongs to another merchant", reason="TOKEN_MERCHANT")
                ctx = RequestContext(request_id=request_id, merchant_id=owner.merchant_id, channel=owner.channel,
                                     caller_kind="member", caller_id=claims.subject, client_address=creds.address)
            elif creds.bearer:
                # A channel route (browsing) called with a member token: the services may show
                # what this member would pay. A token that does not hold is ignored, never refused.
                ctx = await _optional_member(ctx, creds.bearer, jwt_secret, versions, request_id)
        elif rule.access == "STAFF":
            if not creds.bearer:
                raise Unauthenticated("a staff bearer token is required", reason="TOKEN_MISSING")
            claims = tokens.verify(jwt_secret, creds.bearer, kind="staff")
            ctx = RequestContext(request_id=request_id, merchant_id=claims.merchant_id, caller_kind="staff",
                                 caller_id=claims.subject, roles=claims.roles, client_address=creds.address)
        elif rule.access == "PLATFORM":
            # The operator above merchants: one shared secret (SIYU_PLATFORM_TOKEN), compared
            # in constant time; no merchant comes with it.
            if not creds.bearer:
                raise Unauthenticated("the platform token is required", reason="TOKEN_MISSING")
            if not platform_token or not hmac.compare_digest(creds.bearer.encode(), platform_token.encode()):
                raise Unauthenticated("the platform token is not valid", reason="TOKEN_INVALID")
            ctx = RequestContext(request_id=request_id, caller_kind="platform", caller_id="platform",
                                 client_address=creds.address)
        else:
            raise ApiError("NOT_FOUND", "no such route")
        # The same rule the services enforce: roles (OWNER always allowed), member, channel.
        access.check(rule, ctx)
        # Last, as it may cost a look-up: is the token still its subject's current version?
        if claims is not None and versions is not None:
            await versions.check(claims, request_id)
    except DomainError as error:
        raise ApiError(error.code.name, error.message, error.reason or error.code.name) from None
    return ctx


async def _optional_member(ctx: RequestContext, bearer: str, jwt_secret: str, versions: TokenVersions | None,
                           request_id: str) -> RequestContext:
    """The channel context with the member of a valid, current member token of its merchant;
    the context unchanged for any other token."""
    try:
        claims = tokens.verify(jwt_secret, bearer, kind="member")
        if claims.merchant_id != ctx.merchant_id:
            return ctx
        if versions is not None:
            await versions.check(claims, request_id)
    except (DomainError, ApiError):
        return ctx
    return RequestContext(request_id=request_id, merchant_id=ctx.merchant_id, channel=ctx.channel,
                          caller_kind="member", caller_id=claims.subject, client_address=ctx.client_address)
