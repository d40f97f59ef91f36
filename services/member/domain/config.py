"""Per-merchant member configuration. The defaults live here; each merchant document
carries its own copy, so a merchant can change them without a release."""
from __future__ import annotations

from dataclasses import dataclass, field

from services.member.domain.points_settings import PointsSettings

TIERS = ("REGULAR", "SILVER", "GOLD", "BLACK_GOLD")

DEFAULT_TIER_THRESHOLDS = (0, 1_000, 5_000, 15_000)
DEFAULT_TIER_DISCOUNT_BP = (10_000, 9_500, 9_000, 8_500)
DEFAULT_POINTS_MULTIPLIER_BP = (10_000, 12_000, 15_000, 20_000)
# Points from an order stay frozen until its after-sales window closes.
DEFAULT_POINTS_FROZEN_DAYS = 7
DEFAULT_LOGIN_PROVIDER = "sandbox"
DEFAULT_TIME_ZONE = "Asia/Shanghai"


@dataclass(frozen=True)
class MerchantConfig:
    tier_thresholds: tuple[int, ...] = DEFAULT_TIER_THRESHOLDS
    tier_discount_bp: tuple[int, ...] = DEFAULT_TIER_DISCOUNT_BP
    points_multiplier_bp: tuple[int, ...] = DEFAULT_POINTS_MULTIPLIER_BP
    points_frozen_days: int = DEFAULT_POINTS_FROZEN_DAYS
    # Identity provider per channel ("MINI_PROGRAM" -> "wechat"); others use the default.
    login_provider: str = DEFAULT_LOGIN_PROVIDER
    login_providers: dict[str, str] = field(default_factory=dict)
    # Points at checkout and their expiry (value, floor, cap, step, expiry years).
    points: PointsSettings = field(default_factory=PointsSettings)
    # The coupon template each tier's members get on their birthday ("": none).
    birthday_coupon_template_ids: tuple[str, ...] = ("",) * len(TIERS)

    def provider_for(self, channel: str) -> str:
        return self.login_providers.get(channel, self.login_provider)

    def to_doc(self) -> dict:
        return {
            "tier_thresholds": list(self.tier_thresholds),
            "tier_discount_bp": list(self.tier_discount_bp),
            "points_multiplier_bp": list(self.points_multiplier_bp),
            "points_frozen_days": self.points_frozen_days,
            "login_provider": self.login_provider,
            "login_providers": dict(self.login_providers),
            "points": self.points.to_doc(),
            "birthday_coupon_template_ids": list(self.birthday_coupon_template_ids),
        }

    @classmethod
    def from_doc(cls, doc: dict | None) -> "MerchantConfig":
        """A stored config; fields it lacks take the defaults."""
        doc = doc or {}
        base = cls()
        return cls(
            tier_thresholds=tuple(int(v) for v in doc.get("tier_thresholds") or base.tier_thresholds),
            tier_discount_bp=tuple(int(v) for v in doc.get("tier_discount_bp") or base.tier_discount_bp),
            points_multiplier_bp=tuple(int(v) for v in doc.get("points_multiplier_bp")
                                       or base.points_multiplier_bp),
            points_frozen_days=int(doc.get("points_frozen_days", base.points_frozen_days)),
            login_provider=str(doc.get("login_provider") or base.login_provider),
            login_providers={str(k): str(v) for k, v in (doc.get("login_providers") or {}).items()},
            points=PointsSettings.from_doc(doc.get("points")),
            birthday_coupon_template_ids=tuple(
                (list(doc.get("birthday_coupon_template_ids") or []) + [""] * len(TIERS))[:len(TIERS)]),
        )
