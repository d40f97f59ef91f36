"""Protobuf views of members and ledger entries, shared by the API and the events."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from siyu.member.v1 import member_pb2

from siyu_kit.logging import mask_phone
from siyu_kit.protos import CHANNEL_BY_NAME, aware, timestamp


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


def member_proto(view: MemberView) -> member_pb2.Member:
    return member_pb2.Member(
        member_id=view.member_id, nickname=view.nickname, avatar_url=view.avatar_url,
        phone_masked=mask_phone(view.phone) if view.phone else "",
        tier=member_pb2.Tier.Value(f"TIER_{view.tier}"), growth_value=view.growth,
        created_at=timestamp(aware(view.created_at)),
        channels=[CHANNEL_BY_NAME[c] for c in view.channels if c in CHANNEL_BY_NAME],
    )


def entry_proto(doc: dict) -> member_pb2.PointsEntry:
    return member_pb2.PointsEntry(
        entry_id=doc["_id"], source=member_pb2.PointsSource.Value(f"POINTS_SOURCE_{doc['source']}"),
        source_id=doc["source_id"], points=int(doc["points"]), frozen=bool(doc.get("frozen")),
        created_at=timestamp(aware(doc.get("created_at"))),
    )
