"""What opening a share code tells other services: a signed-in member opened a code that
names its sharer, so the member service can bind the member to the code's distributor or
guide by the merchant's rules. An anonymous open (no member token) tells nothing: there is
no one to bind."""
from __future__ import annotations

from dataclasses import dataclass

from services.content.domain.engagement import ShareCode


@dataclass(frozen=True)
class ShareCodeWasOpened:
    """One open by a member; stored with the open's own record, so each open is told once."""
    code: str
    sharer_id: str  # mem_ or stf_
    member_id: str
    at_ms: int


def opened(share: ShareCode, member_id: str, at_ms: int) -> ShareCodeWasOpened | None:
    """The event of an open; None for an anonymous opener or a code whose member sharer
    was erased (it binds no one)."""
    if not member_id or not share.sharer_id:
        return None
    return ShareCodeWasOpened(code=share.code, sharer_id=share.sharer_id, member_id=member_id, at_ms=at_ms)
