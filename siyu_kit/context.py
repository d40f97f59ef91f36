"""The request context: who calls, for which merchant, through which channel.

The gateway builds it from the channel key and the bearer token; services carry it to
each other as gRPC metadata; use cases read it from a context variable. A merchant id
never comes from a request body.
"""
from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field, replace

from siyu_kit import trust
from siyu_kit.errors import PermissionDenied, Unauthenticated
from siyu_kit.ids import new_id

MD_REQUEST_ID = "x-request-id"
MD_MERCHANT = "x-siyu-merchant"
MD_CHANNEL = "x-siyu-channel"
MD_CALLER = "x-siyu-caller"  # "member:mem_…", "staff:stf_…", "platform:platform", or empty
MD_ROLES = "x-siyu-roles"  # "OWNER,OPERATOR"
MD_SERVICE = "x-siyu-service"  # set by a service calling another service
MD_CLIENT_ADDRESS = "x-siyu-client-address"  # the end client's network address, as the gateway saw it

CHANNELS = ("MINI_PROGRAM", "H5", "LIVE")
ROLES = ("OWNER", "OPERATOR", "GUIDE", "FINANCE")


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    merchant_id: str = ""
    channel: str = ""  # one of CHANNELS, or empty for staff and internal calls
    caller_kind: str = ""  # "member", "staff", "platform" (the operator above merchants) or ""
    caller_id: str = ""
    roles: tuple[str, ...] = field(default_factory=tuple)
    calling_service: str = ""
    # Where the request came from (an IP address), for per-address limits; empty inside.
    client_address: str = ""
    # The RPC this process is serving ("PlaceOrder"), set by the server; never sent on.
    rpc: str = ""
    # When the caller's deadline passes (time.monotonic()); 0 for none. Outgoing calls
    # pass on what is left as their timeout, not as metadata.
    deadline: float = 0.0

    def to_metadata(self, calling_service: str = "") -> tuple[tuple[str, str], ...]:
        """The identity headers and the assertion that vouches for them (siyu_kit.trust),
        signed as `calling_service`, else the process's own name."""
        return trust.signed(self.identity_pairs(calling_service), calling_service or self.calling_service)

    def identity_pairs(self, calling_service: str = "") -> tuple[tuple[str, str], ...]:
        """The identity headers alone, unsigned: a service accepts them only with an assertion."""
        caller = f"{self.caller_kind}:{self.caller_id}" if self.caller_kind else ""
        pairs = [
            (MD_REQUEST_ID, self.request_id or new_id("req")),
            (MD_MERCHANT, self.merchant_id),
            (MD_CHANNEL, self.channel),
            (MD_CALLER, caller),
            (MD_ROLES, ",".join(self.roles)),
            (MD_CLIENT_ADDRESS, self.client_address),
        ]
        if calling_service or self.calling_service:
            pairs.append((MD_SERVICE, calling_service or self.calling_service))
        return tuple((k, v) for k, v in pairs if v)

    @classmethod
    def from_metadata(cls, metadata) -> "RequestContext":
        md = {k: v for k, v in (metadata or ())}
        caller = md.get(MD_CALLER, "")
        kind, _, caller_id = caller.partition(":")
        roles = tuple(r for r in md.get(MD_ROLES, "").split(",") if r)
        return cls(
            request_id=md.get(MD_REQUEST_ID) or new_id("req"),
            merchant_id=md.get(MD_MERCHANT, ""),
            channel=md.get(MD_CHANNEL, ""),
            caller_kind=kind if caller_id else "",
            caller_id=caller_id,
            roles=roles,
            calling_service=md.get(MD_SERVICE, ""),
            client_address=md.get(MD_CLIENT_ADDRESS, ""),
        )

    def with_merchant(self, merchant_id: str) -> "RequestContext":
        return replace(self, merchant_id=merchant_id)

    def with_deadline(self, deadline: float) -> "RequestContext":
        return replace(self, deadline=deadline)

    def time_left(self) -> float | None:
        """Seconds until the caller's deadline (negative once past), None without one."""
        return self.deadline - time.monotonic() if self.deadline else None

    # What use cases ask of the caller. Each raises when the answer is no.
    def require_merchant(self) -> str:
        if not self.merchant_id:
            raise Unauthenticated("a channel key or staff token is required")
        return self.merchant_id

    def require_member(self) -> str:
        self.require_merchant()
        if self.caller_kind != "member":
            raise Unauthenticated("a member token is required")
        return self.caller_id

    def require_staff(self, *roles: str) -> str:
        self.require_merchant()
        if self.caller_kind != "staff":
            raise Unauthenticated("a staff token is required")
        if "OWNER" not in self.roles and roles and not set(roles) & set(self.roles):
            raise PermissionDenied(f"needs one of the roles {', '.join(roles)}")
        return self.caller_id

    def require_platform(self) -> str:
        """The platform operator: acts on merchants it names, never through a merchant's key."""
        if self.caller_kind != "platform":
            raise PermissionDenied("a platform token is required")
        return self.caller_id


_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar(
    "siyu_request_context", default=RequestContext()
)


def current() -> RequestContext:
    return _current.get()


def use(ctx: RequestContext) -> contextvars.Token:
    return _current.set(ctx)


def reset(token: contextvars.Token) -> None:
    _current.reset(token)
