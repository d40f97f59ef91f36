"""Proto mapping of member profiles and the profile events."""
from __future__ import annotations

from siyu.member.v1 import events_pb2, member_pb2

from siyu_kit.events.outbox import Event, event_for
from siyu_kit.protos import timestamp

from services.member.domain.birthday import Birthday
from services.member.domain.profile import MarketingConsentChanged, MemberProfileUpdated, Profile, ProfileChanges


def gender_value(gender: str) -> int:
    return member_pb2.Gender.Value(f"GENDER_{gender}") if gender else member_pb2.GENDER_UNSPECIFIED


def gender_of(value: int) -> str:
    """"" for unspecified; a number outside the enum gives a name the domain refuses."""
    if value == member_pb2.GENDER_UNSPECIFIED:
        return ""
    try:
        return member_pb2.Gender.Name(value).removeprefix("GENDER_")
    except ValueError:
        return str(value)


def birthday_proto(birthday: Birthday | None) -> member_pb2.Birthday | None:
    if birthday is None:
        return None
    return member_pb2.Birthday(month=birthday.month, day=birthday.day, year=birthday.year)


def birthday_of(message: member_pb2.Birthday) -> Birthday:
    return Birthday(int(message.month), int(message.day), int(message.year))


def profile_proto(profile: Profile) -> member_pb2.Profile:
    return member_pb2.Profile(
        member_id=profile.member_id, nickname=profile.nickname, avatar_url=profile.avatar_url,
        birthday=birthday_proto(profile.birthday), birthday_locked=profile.birthday_locked,
        gender=gender_value(profile.gender), region_code=profile.region_code, region_name=profile.region_name,
        phone_masked=profile.phone_masked, marketing_consent=profile.marketing_consent,
        marketing_consent_changed_at=timestamp(profile.consent_changed_at),
        personalised_recommendations=profile.personalised_recommendations, version=profile.version)


def changes_of(request: member_pb2.UpdateMyProfileRequest) -> ProfileChanges:
    """Only the fields the request sets."""
    def given(name: str):
        return getattr(request, name) if request.HasField(name) else None

    gender = given("gender")
    return ProfileChanges(nickname=given("nickname"), avatar_url=given("avatar_url"),
                          birthday=birthday_of(request.birthday) if request.HasField("birthday") else None,
                          gender=gender_of(gender) if gender is not None else None,
                          region_code=given("region_code"),
                          personalised_recommendations=given("personalised_recommendations"))


def profile_events(profile: Profile, version: int) -> list[Event]:
    """The events the profile recorded, stamped with the version the save writes."""
    events: list[Event] = []
    for event in profile.pull_events():
        if isinstance(event, MemberProfileUpdated):
            payload = events_pb2.MemberProfileUpdated(profile=profile_proto(profile), changed=list(event.changed))
        elif isinstance(event, MarketingConsentChanged):
            payload = events_pb2.MarketingConsentChanged(member_id=event.member_id, consent=event.consent,
                                                         changed_at=timestamp(event.at))
        else:
            continue
        events.append(event_for(payload, merchant_id=profile.merchant_id, aggregate_id=profile.member_id,
                                aggregate_version=version, occurred_at=event.at))
    return events
