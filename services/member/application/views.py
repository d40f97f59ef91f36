"""What the member centre shows of a member, assembled from the member, its ledger and
its channel links."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class MemberView:
    member_id: str
    nickname: str
    avatar_url: str
    phone: str
    tier: str
    growth: int
    created_at: datetime | None
    channels: tuple[str, ...]
