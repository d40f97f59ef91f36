"""Protobuf views of members and ledger entries, and the events the member service
publishes, built from the domain events its aggregates record."""
from __future__ import annotations

from siyu.member.v1 import events_pb2, member_pb2

from siyu_kit.events.outbox import Event, event_for
from siyu_kit.logging import mask_phone
from siyu_kit.protos import CHANNEL_BY_NAME, aware, timestamp

from services.member.application.addresses import AddressView
from services.member.application.views import MemberView
from services.member.domain.config import TIERS
from services.member.domain.members import MemberRegistered
from services.member.domain.points import PointsEarned, PointsEntry, PointsMoved


def member_proto(view: MemberView) -> member_pb2.Member:
    return member_pb2.Member(
        member_id=view.member_id, nickname=view.nickname, avatar_url=view.avatar_url,
        phone_masked=mask_phone(view.phone) if view.phone else "",
        tier=member_pb2.Tier.Value(f"TIER_{view.tier}"), growth_value=view.growth,
        created_at=timestamp(aware(view.created_at)),
        channels=[CHANNEL_BY_NAME[c] for c in view.channels if c in CHANNEL_BY_NAME],
    )


def address_proto(view: AddressView) -> member_pb2.Address:
    """The member's or staff's view: the phone only masked."""
    a = view.address
    return member_pb2.Address(
        address_id=a.id, recipient=a.recipient, phone_masked=a.phone_masked,
        province_code=a.region.province.code, city_code=a.region.city.code, district_code=a.region.district.code,
        province_name=a.region.province.name, city_name=a.region.city.name, district_name=a.region.district.name,
        detail=a.detail, is_default=view.is_default, created_at=timestamp(aware(a.created_at)), version=a.version)


def entry_proto(entry: PointsEntry) -> member_pb2.PointsEntry:
    return member_pb2.PointsEntry(
        entry_id=entry.id, source=member_pb2.PointsSource.Value(f"POINTS_SOURCE_{entry.source}"),
        source_id=entry.source_id, points=entry.points, frozen=entry.frozen,
        created_at=timestamp(aware(entry.created_at)),
        kind=member_pb2.PointsMovement.Value(f"POINTS_MOVEMENT_{entry.kind}") if entry.kind else 0,
        available_change=entry.available, frozen_change=entry.frozen_delta, held_change=entry.held,
        owed_change=entry.owed, order_id=entry.order_id, reason=entry.reason, growth_change=entry.growth,
    )


def registered_event(merchant_id: str, version: int, registered: MemberRegistered) -> Event:
    # A new member is at the first tier with no growth, known on its first channel only.
    member = member_proto(MemberView(registered.member_id, registered.nickname, "", "", TIERS[0], 0,
                                     registered.registered_at, (registered.channel,)))
    return event_for(events_pb2.MemberRegistered(member=member, channel=member.channels[0]),
                     merchant_id=merchant_id, aggregate_id=registered.member_id, aggregate_version=version,
                     channel=registered.channel)


def earned_event(merchant_id: str, earned: PointsEarned) -> Event:
    # Each ledger entry is its own one-version record on the wire.
    return event_for(events_pb2.PointsEarned(member_id=earned.member_id, entry=entry_proto(earned.entry)),
                     merchant_id=merchant_id, aggregate_id=earned.entry.id, aggregate_version=1,
                     channel=earned.channel)


# The verb of each movement's subject (siyu.member.points.<verb>).
MOVED_VERBS = {"HOLD": "held", "SPEND": "spent", "RELEASE": "released", "UNFREEZE": "unfrozen",
               "REVERSE": "reversed", "EXPIRE": "expired", "ADJUST": "adjusted", "CHECK_IN": "checked_in",
               "REFERRAL": "rewarded"}


def moved_event(merchant_id: str, moved: PointsMoved) -> Event:
    return event_for(events_pb2.PointsMoved(member_id=moved.member_id, entry=entry_proto(moved.entry)),
                     merchant_id=merchant_id, aggregate_id=moved.entry.id, aggregate_version=1,
                     verb=MOVED_VERBS[moved.entry.kind], channel=moved.channel)
