"""Tiers (会员等级) follow growth value: the highest threshold reached wins, at once."""
from __future__ import annotations

from services.member.domain.config import TIERS, MerchantConfig


def tier_index(growth: int, thresholds: tuple[int, ...]) -> int:
    """Index of the highest tier whose threshold `growth` reaches (0 when none)."""
    reached = 0
    for index, threshold in enumerate(thresholds[:len(TIERS)]):
        if growth >= threshold:
            reached = index
    return reached


def tier_for(growth: int, config: MerchantConfig) -> str:
    return TIERS[tier_index(growth, config.tier_thresholds)]


def multiplier_bp(growth: int, config: MerchantConfig) -> int:
    return config.points_multiplier_bp[tier_index(growth, config.tier_thresholds)]


def discount_bp(growth: int, config: MerchantConfig) -> int:
    return config.tier_discount_bp[tier_index(growth, config.tier_thresholds)]
