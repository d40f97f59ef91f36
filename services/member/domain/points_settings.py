"""A merchant's points terms: what points are worth at checkout, how many an order may use
and when earned points expire. Stored in the merchant's config (`config.points`), read by
the order service for the quote's "maximum usable" (GetPointsTerms)."""
from __future__ import annotations

from dataclasses import dataclass

from siyu_kit.errors import Violations
from siyu_kit.money import BASIS_POINTS

DEFAULT_POINTS_PER_YUAN = 100  # 100 points = ¥1
DEFAULT_MIN_POINTS = 100
DEFAULT_MAX_SHARE_BP = 5_000  # at most 50% of the amount payable after the coupon
DEFAULT_STEP = 100
# Earned points expire at the end of the year this many years after the year they were
# earned in: 1 = "the end of next year". 0 = the end of the same year; -1 = never.
DEFAULT_EXPIRY_YEARS = 1
NEVER = -1


@dataclass(frozen=True)
class PointsSettings:
    points_per_yuan: int = DEFAULT_POINTS_PER_YUAN
    min_points: int = DEFAULT_MIN_POINTS
    max_share_bp: int = DEFAULT_MAX_SHARE_BP
    step: int = DEFAULT_STEP
    expiry_years: int = DEFAULT_EXPIRY_YEARS

    def to_doc(self) -> dict:
        return {"points_per_yuan": self.points_per_yuan, "min_points": self.min_points,
                "max_share_bp": self.max_share_bp, "step": self.step, "expiry_years": self.expiry_years}

    @classmethod
    def from_doc(cls, doc: dict | None) -> "PointsSettings":
        doc = doc or {}
        base = cls()
        return cls(**{name: int(doc.get(name, getattr(base, name))) for name in base.to_doc()})


def check(v: Violations, s: PointsSettings, at: str = "settings") -> None:
    """Field rules that span fields: a step is worth whole fen, the floor is a whole step."""
    v.check(1 <= s.points_per_yuan <= 10_000, f"{at}.points_per_yuan", "1..10000")
    v.check(1 <= s.step <= 100_000, f"{at}.step", "1..100000")
    v.check(0 <= s.max_share_bp <= BASIS_POINTS, f"{at}.max_share_bp", "0..10000")
    v.check(NEVER <= s.expiry_years <= 10, f"{at}.expiry_years", "-1 (never) .. 10")
    if s.step >= 1 and s.points_per_yuan >= 1:
        v.check(s.step * 100 % s.points_per_yuan == 0, f"{at}.step", "a step must be worth whole fen")
        v.check(s.min_points >= 0 and s.min_points % s.step == 0, f"{at}.min_points", "a multiple of step")


def value_fen(s: PointsSettings, points: int) -> int:
    """What `points` take off the payable, in fen (exact for multiples of the step)."""
    return points * 100 // s.points_per_yuan


def max_usable(s: PointsSettings, available: int, payable_fen: int) -> int:
    """The most points an order with this payable (after the coupon) may use: at most the
    share of the payable, in whole steps, no more than the member has, and 0 below the floor."""
    if payable_fen <= 0 or available <= 0:
        return 0
    cap_fen = payable_fen * s.max_share_bp // BASIS_POINTS
    cap = cap_fen * s.points_per_yuan // 100
    usable = min(cap, available)
    usable -= usable % s.step
    return usable if usable >= max(s.min_points, s.step) else 0


def refusal(s: PointsSettings, points: int, available: int, payable_fen: int) -> str:
    """Why an order may not use `points` ("" when it may): the reason word."""
    if points < s.min_points or points % s.step:
        return "POINTS_STEP"
    if payable_fen > 0 and points > max_usable(s, max(available, points), payable_fen):
        return "POINTS_OVER_LIMIT"
    if points > available:
        return "POINTS_INSUFFICIENT"
    return ""
