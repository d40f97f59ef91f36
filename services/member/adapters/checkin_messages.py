"""Protobuf views of check-ins and their settings, and the check-in event."""
from __future__ import annotations

from siyu.member.v1 import events_pb2, member_pb2

from siyu_kit.events.outbox import Event, event_for
from siyu_kit.protos import aware, timestamp

from services.member.domain.checkin import CheckIn, CheckInSettings, MemberCheckedIn, day_key


def check_in_proto(check_in: CheckIn) -> member_pb2.CheckIn:
    return member_pb2.CheckIn(day=day_key(check_in.day), streak=check_in.streak, cycle_day=check_in.cycle_day,
                              points=check_in.points, growth=check_in.growth,
                              checked_in_at=timestamp(aware(check_in.checked_in_at)))


def settings_proto(settings: CheckInSettings) -> member_pb2.CheckInSettings:
    return member_pb2.CheckInSettings(day_rewards=list(settings.day_rewards), growth=settings.growth)


def settings_of(message: member_pb2.CheckInSettings) -> CheckInSettings:
    return CheckInSettings(tuple(message.day_rewards), message.growth)


def checked_in_event(check_in: CheckIn, event: MemberCheckedIn) -> Event:
    # A check-in is written once: its one event is its version 1.
    return event_for(events_pb2.MemberCheckedIn(member_id=check_in.member_id,
                                                check_in=check_in_proto(event.check_in)),
                     merchant_id=check_in.merchant_id, aggregate_id=check_in.id, aggregate_version=1,
                     channel=check_in.channel)
