"""Who may call an RPC, read from the `(siyu.common.v1.access)` option in the protos.

The gateway and every service read the same rule, so adding an RPC needs no auth code.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from google.protobuf import descriptor_pool
from siyu.common.v1 import common_pb2

from siyu_kit.context import RequestContext
from siyu_kit.errors import PermissionDenied, Unauthenticated

ACCESS_NAMES = {v.number: v.name.removeprefix("ACCESS_") for v in common_pb2.Access.DESCRIPTOR.values}
ROLE_NAMES = {v.number: v.name.removeprefix("STAFF_ROLE_") for v in common_pb2.StaffRole.DESCRIPTOR.values}


@dataclass(frozen=True)
class Rule:
    access: str  # PUBLIC, CHANNEL, MEMBER, STAFF, INTERNAL, PLATFORM
    roles: tuple[str, ...] = ()


def rule_of(method_descriptor) -> Rule:
    options = method_descriptor.GetOptions()
    if not options.HasExtension(common_pb2.access):
        # An RPC without a rule is internal: nothing reaches it from outside by accident.
        return Rule("INTERNAL")
    ext = options.Extensions[common_pb2.access]
    return Rule(ACCESS_NAMES[ext.access], tuple(ROLE_NAMES[r] for r in ext.roles))


@functools.lru_cache(maxsize=None)
def rule_for_path(path: str) -> Rule:
    """`/siyu.order.v1.OrderService/PlaceOrder` → its rule."""
    service, _, method = path.lstrip("/").partition("/")
    descriptor = descriptor_pool.Default().FindServiceByName(service).FindMethodByName(method)
    return rule_of(descriptor)


def check(rule: Rule, ctx: RequestContext) -> None:
    """Raise unless the context satisfies the rule."""
    if rule.access == "PUBLIC":
        return
    if rule.access == "INTERNAL":
        if not ctx.calling_service:
            raise PermissionDenied("internal RPC")
        return
    if ctx.calling_service:
        # A service acting for a caller: it propagated the caller's identity, which is
        # checked by the use case; the service itself is trusted.
        return
    if rule.access == "CHANNEL":
        if not ctx.merchant_id or not ctx.channel:
            raise Unauthenticated("a channel API key is required")
    elif rule.access == "MEMBER":
        ctx.require_member()
        if not ctx.channel:
            raise Unauthenticated("a channel API key is required")
    elif rule.access == "STAFF":
        ctx.require_staff(*rule.roles)
    elif rule.access == "PLATFORM":
        ctx.require_platform()
