"""Proto mapping of staff administration: staff users, channel keys (a hint, never the
key), audit entries and tier levels."""
from __future__ import annotations

from siyu.member.v1 import member_pb2

from siyu_kit.access import ROLE_NAMES
from siyu_kit.protos import CHANNEL_BY_NAME, aware, timestamp

from services.member.application.admin import IssuedKey, TierSettings
from services.member.domain.admin import AuditEntry, TierLevel, TierStanding
from services.member.domain.merchants import ApiKey, StaffUser

ROLE_BY_NAME = {name: number for number, name in ROLE_NAMES.items()}


def staff_proto(staff: StaffUser) -> member_pb2.StaffUser:
    return member_pb2.StaffUser(staff_id=staff.id, username=staff.username,
                                roles=[ROLE_BY_NAME[r] for r in staff.roles if r in ROLE_BY_NAME],
                                disabled=staff.disabled, created_at=timestamp(aware(staff.created_at)))


def key_proto(key: ApiKey) -> member_pb2.ApiKeyInfo:
    return member_pb2.ApiKeyInfo(key_id=key.id, channel=CHANNEL_BY_NAME.get(key.channel, 0), key_prefix=key.prefix,
                                 key_last4=key.last4, disabled=key.disabled,
                                 created_at=timestamp(aware(key.created_at)))


def issued_proto(issued: IssuedKey) -> member_pb2.IssuedApiKey:
    return member_pb2.IssuedApiKey(key=key_proto(issued.key), api_key=issued.api_key)


def audit_proto(entry: AuditEntry) -> member_pb2.AuditEntry:
    return member_pb2.AuditEntry(entry_id=entry.id, actor_kind=entry.actor_kind, actor_id=entry.actor_id,
                                 action=entry.action, target_id=entry.target_id, before=entry.before,
                                 after=entry.after, created_at=timestamp(aware(entry.created_at)))


def tier_value(tier: str) -> int:
    return member_pb2.Tier.Value(f"TIER_{tier}") if tier else member_pb2.TIER_UNSPECIFIED


def level_proto(level: TierLevel) -> member_pb2.TierLevel:
    return member_pb2.TierLevel(tier=tier_value(level.tier), threshold=level.threshold,
                                discount_bp=level.discount_bp, points_multiplier_bp=level.points_multiplier_bp,
                                birthday_coupon_template_id=level.birthday_coupon_template_id)


def level_of(message: member_pb2.TierLevel) -> TierLevel:
    return TierLevel(member_pb2.Tier.Name(message.tier).removeprefix("TIER_"), int(message.threshold),
                     int(message.discount_bp), int(message.points_multiplier_bp),
                     message.birthday_coupon_template_id)


def tier_config_proto(settings: TierSettings) -> member_pb2.TierConfig:
    return member_pb2.TierConfig(levels=[level_proto(lv) for lv in settings.levels], version=settings.version)


def standing_proto(standing: TierStanding) -> member_pb2.GetMyTierResponse:
    return member_pb2.GetMyTierResponse(tier=tier_value(standing.level.tier), growth_value=standing.growth,
                                        next_tier=tier_value(standing.next_tier),
                                        growth_needed=standing.growth_needed, level=level_proto(standing.level))
