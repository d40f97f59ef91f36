"""The request context a servicer would set, for use cases called straight from a test."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from siyu_kit import context
from siyu_kit.context import RequestContext
from siyu_kit.ids import new_id


@contextmanager
def acting(ctx: RequestContext) -> Iterator[RequestContext]:
    token = context.use(ctx)
    try:
        yield ctx
    finally:
        context.reset(token)


def caller(merchant_id: str = "", *, channel: str = "", member_id: str = "", staff_id: str = "",
           roles: tuple[str, ...] = (), client_address: str = "", service: str = ""):
    """Acting as a member, a staff user or another service of this merchant."""
    kind, caller_id = ("member", member_id) if member_id else (("staff", staff_id) if staff_id else ("", ""))
    return acting(RequestContext(request_id=new_id("req"), merchant_id=merchant_id, channel=channel,
                                 caller_kind=kind, caller_id=caller_id, roles=roles,
                                 client_address=client_address, calling_service=service))


def platform():
    """Acting as the platform operator (no merchant)."""
    return acting(RequestContext(request_id=new_id("req"), caller_kind="platform", caller_id="platform"))
