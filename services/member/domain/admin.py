"""Staff administration rules: the audit trail, channel keys made here, tier configuration
and the keyset cursors of the staff lists."""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime

from siyu_kit.errors import Violations

from services.member.domain.config import TIERS, MerchantConfig

# ---- the audit trail ------------------------------------------------------------------

STAFF_USER_CREATED = "STAFF_USER_CREATED"
STAFF_USER_DISABLED = "STAFF_USER_DISABLED"
STAFF_USER_ENABLED = "STAFF_USER_ENABLED"
STAFF_PASSWORD_ROTATED = "STAFF_PASSWORD_ROTATED"
API_KEY_CREATED = "API_KEY_CREATED"
API_KEY_DISABLED = "API_KEY_DISABLED"
API_KEY_ROTATED = "API_KEY_ROTATED"
TIER_CONFIG_UPDATED = "TIER_CONFIG_UPDATED"
MERCHANT_ONBOARDED = "MERCHANT_ONBOARDED"
# Points and coupons: settings, adjustments, templates and grants.
POINTS_SETTINGS_UPDATED = "POINTS_SETTINGS_UPDATED"
POINTS_ADJUSTED = "POINTS_ADJUSTED"
COUPON_TEMPLATE_CREATED = "COUPON_TEMPLATE_CREATED"
COUPON_TEMPLATE_UPDATED = "COUPON_TEMPLATE_UPDATED"
COUPON_TEMPLATE_TOTAL_CHANGED = "COUPON_TEMPLATE_TOTAL_CHANGED"
COUPON_TEMPLATE_STATE_CHANGED = "COUPON_TEMPLATE_STATE_CHANGED"
COUPON_GRANT_STARTED = "COUPON_GRANT_STARTED"
COUPON_SETTINGS_UPDATED = "COUPON_SETTINGS_UPDATED"
MEMBER_VALUE_ACTIONS = (POINTS_SETTINGS_UPDATED, POINTS_ADJUSTED, COUPON_TEMPLATE_CREATED, COUPON_TEMPLATE_UPDATED,
                        COUPON_TEMPLATE_TOTAL_CHANGED, COUPON_TEMPLATE_STATE_CHANGED, COUPON_GRANT_STARTED,
                        COUPON_SETTINGS_UPDATED)
POINTS_SETTINGS_TARGET = "points_settings"
COUPON_SETTINGS_TARGET = "coupon_settings"
ACTIONS = (STAFF_USER_CREATED, STAFF_USER_DISABLED, STAFF_USER_ENABLED, STAFF_PASSWORD_ROTATED, API_KEY_CREATED,
           API_KEY_DISABLED, API_KEY_ROTATED, TIER_CONFIG_UPDATED, MERCHANT_ONBOARDED) + MEMBER_VALUE_ACTIONS
TIER_CONFIG_TARGET = "tier_config"
# ---- check-in ----
CHECKIN_SETTINGS_UPDATED = "CHECKIN_SETTINGS_UPDATED"
CHECKIN_SETTINGS_TARGET = "checkin_settings"
ACTIONS = ACTIONS + (CHECKIN_SETTINGS_UPDATED,)
# ---- end of check-in ----


@dataclass(frozen=True)
class AuditEntry:
    """Who changed what: summaries of before and after, never a secret."""
    id: str  # aud_…
    merchant_id: str
    actor_kind: str  # "staff" or "platform"
    actor_id: str
    action: str  # one of ACTIONS
    target_id: str
    before: dict[str, str] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None


# ---- channel keys made by the service ----------------------------------------------------

KEY_PREFIXES = {"MINI_PROGRAM": "sk_mp_", "H5": "sk_h5_", "LIVE": "sk_lv_"}
SHOWN_PREFIX = 6


def new_api_key(channel: str) -> str:
    """A fresh key: the channel's prefix and 32 random url-safe characters."""
    return KEY_PREFIXES[channel] + secrets.token_urlsafe(24)


def key_hint(api_key: str) -> tuple[str, str]:
    """What may be shown of a key later: its first characters and last four."""
    return api_key[:SHOWN_PREFIX], api_key[-4:]


def key_summary(channel: str, prefix: str, last4: str, disabled: bool) -> dict[str, str]:
    return {"channel": channel, "key": f"{prefix}…{last4}", "disabled": str(disabled).lower()}


def staff_summary(username: str, roles: tuple[str, ...], disabled: bool) -> dict[str, str]:
    return {"username": username, "roles": ",".join(roles), "disabled": str(disabled).lower()}


# ---- tiers -------------------------------------------------------------------------------

MAX_THRESHOLD = 1_000_000_000
MAX_MULTIPLIER_BP = 100_000


@dataclass(frozen=True)
class TierLevel:
    tier: str
    threshold: int
    discount_bp: int
    points_multiplier_bp: int
    birthday_coupon_template_id: str = ""  # "": no birthday coupon


def levels_of(config: MerchantConfig) -> list[TierLevel]:
    return [TierLevel(tier, int(config.tier_thresholds[i]), int(config.tier_discount_bp[i]),
                      int(config.points_multiplier_bp[i]), config.birthday_coupon_template_ids[i])
            for i, tier in enumerate(TIERS)]


def check_levels(levels: list[TierLevel]) -> None:
    """All tiers in order, thresholds rising from 0, benefits within bounds; INVALID_ARGUMENT
    naming each offending field otherwise."""
    v = Violations()
    if not v.check([lv.tier for lv in levels] == list(TIERS), "levels",
                   "one level per tier, in the order " + ", ".join(TIERS)):
        v.raise_if_any()
    for i, lv in enumerate(levels):
        at = f"levels[{i}]"
        if i == 0:
            v.check(lv.threshold == 0, f"{at}.threshold", "0: every member holds the first tier")
        else:
            v.check(levels[i - 1].threshold < lv.threshold <= MAX_THRESHOLD, f"{at}.threshold",
                    f"more than the tier before, at most {MAX_THRESHOLD}")
        v.check(1 <= lv.discount_bp <= 10_000, f"{at}.discount_bp", "1 to 10000 (10000 = no discount)")
        v.check(0 <= lv.points_multiplier_bp <= MAX_MULTIPLIER_BP, f"{at}.points_multiplier_bp",
                f"0 to {MAX_MULTIPLIER_BP}")
        v.check(not lv.birthday_coupon_template_id or is_id(lv.birthday_coupon_template_id, "cpt"),
                f"{at}.birthday_coupon_template_id", "a cpt_ id, or empty for none")
    v.raise_if_any()


def with_levels(config: MerchantConfig, levels: list[TierLevel]) -> MerchantConfig:
    return replace(config, tier_thresholds=tuple(lv.threshold for lv in levels),
                   tier_discount_bp=tuple(lv.discount_bp for lv in levels),
                   points_multiplier_bp=tuple(lv.points_multiplier_bp for lv in levels),
                   birthday_coupon_template_ids=tuple(lv.birthday_coupon_template_id for lv in levels))


def tier_summary(config: MerchantConfig) -> dict[str, str]:
    return {lv.tier: f"from {lv.threshold}, price {lv.discount_bp}bp, points {lv.points_multiplier_bp}bp"
            + (f", birthday {lv.birthday_coupon_template_id}" if lv.birthday_coupon_template_id else "")
            for lv in levels_of(config)}


@dataclass(frozen=True)
class TierStanding:
    level: TierLevel
    growth: int
    next_tier: str  # empty at the top
    growth_needed: int


def standing(growth: int, config: MerchantConfig) -> TierStanding:
    levels = levels_of(config)
    current = levels[0]
    for lv in levels:
        if growth >= lv.threshold:
            current = lv
    higher = [lv for lv in levels if lv.threshold > growth]
    nxt = higher[0] if higher else None
    return TierStanding(current, growth, nxt.tier if nxt else "", nxt.threshold - growth if nxt else 0)


# ---- the member directory ------------------------------------------------------------------

PHONE_SUFFIX = re.compile(r"^[0-9]{4}$")


def phone_suffix(phone: str) -> str:
    """What a member is found by in the staff list: the last four digits of their phone.
    Stored beside the (protected) phone whenever a phone is set."""
    digits = "".join(c for c in phone if c.isdigit())
    return digits[-4:] if len(digits) >= 4 else ""


@dataclass(frozen=True)
class MemberFilter:
    phone_suffix: str = ""
    nickname_prefix: str = ""
    growth_min: int | None = None  # a tier: growth from its threshold …
    growth_below: int | None = None  # … up to the next tier's
    registered_from: datetime | None = None
    registered_before: datetime | None = None


def growth_range(tier: str, config: MerchantConfig) -> tuple[int | None, int | None]:
    """The growth values that make up a tier under the merchant's thresholds."""
    index = TIERS.index(tier)
    low = int(config.tier_thresholds[index]) if index else None
    high = int(config.tier_thresholds[index + 1]) if index + 1 < len(TIERS) else None
    return low, high


# ---- keyset cursors -------------------------------------------------------------------------

# The staff lists page with the kit's tokens (siyu_kit/paging.py).
_ID = re.compile(r"^[a-z]{3}_[0-9A-HJKMNP-TV-Z]{26}$")


def is_id(value: str, prefix: str) -> bool:
    return bool(_ID.match(value or "")) and value.startswith(prefix + "_")


# ---- profile ----
# A staff member saw a member's full phone (with the reason they gave), or corrected a
# member's birthday.
MEMBER_PHONE_REVEALED = "MEMBER_PHONE_REVEALED"
MEMBER_BIRTHDAY_CORRECTED = "MEMBER_BIRTHDAY_CORRECTED"
PROFILE_ACTIONS = (MEMBER_PHONE_REVEALED, MEMBER_BIRTHDAY_CORRECTED)
ACTIONS = ACTIONS + PROFILE_ACTIONS
# ---- end of profile ----
# ---- distribution ----
# The distribution settings changed; a distributor was approved, rejected, disabled,
# enabled or put in a level; a customer's exclusive guide was reassigned.
DISTRIBUTION_SETTINGS_UPDATED = "DISTRIBUTION_SETTINGS_UPDATED"
DISTRIBUTION_SETTINGS_TARGET = "distribution_settings"
DISTRIBUTOR_CHANGED = "DISTRIBUTOR_CHANGED"
DISTRIBUTOR_LEVEL_CHANGED = "DISTRIBUTOR_LEVEL_CHANGED"
EXCLUSIVE_GUIDE_REASSIGNED = "EXCLUSIVE_GUIDE_REASSIGNED"
ACTIONS = ACTIONS + (DISTRIBUTION_SETTINGS_UPDATED, DISTRIBUTOR_CHANGED, DISTRIBUTOR_LEVEL_CHANGED,
                     EXCLUSIVE_GUIDE_REASSIGNED)
# ---- end of distribution ----
