"""The member aggregate: a person of one merchant, registered on the channel of first contact."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from siyu_kit.aggregate import Aggregate


@dataclass(frozen=True)
class MemberRegistered:
    """A member came into being (its first login on any channel)."""
    member_id: str
    nickname: str
    channel: str
    registered_at: datetime


@dataclass
class Member(Aggregate):
    id: str  # mem_…
    merchant_id: str
    version: int
    nickname: str = ""
    avatar_url: str = ""
    phone: str = ""  # present only once verified
    registered_channel: str = ""
    # Moves when every token of the member must end (logout).
    token_version: int = 0
    created_at: datetime | None = None

    @classmethod
    def register(cls, member_id: str, merchant_id: str, channel: str, nickname: str, now: datetime) -> "Member":
        member = cls(id=member_id, merchant_id=merchant_id, version=1, nickname=nickname,
                     registered_channel=channel, created_at=now)
        member.record(MemberRegistered(member_id=member_id, nickname=nickname, channel=channel, registered_at=now))
        return member
