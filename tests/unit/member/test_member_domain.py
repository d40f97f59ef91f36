"""Member domain rules: tiers, points maths, the sandbox provider, passwords, config."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from services.member.domain import tiers
from services.member.domain.config import MerchantConfig
from services.member.domain.identity import InvalidLoginCode, SandboxProvider, sandbox_openid
from services.member.domain.merchants import CODE, key_hash, valid_time_zone
from services.member.domain.passwords import hash_password, verify_password
from services.member.domain.points import earn_for_payment, frozen_until

DEFAULT = MerchantConfig()


@pytest.mark.parametrize("growth, tier", [
    (0, "REGULAR"), (999, "REGULAR"), (1_000, "SILVER"), (4_999, "SILVER"), (5_000, "GOLD"),
    (14_999, "GOLD"), (15_000, "BLACK_GOLD"), (10**9, "BLACK_GOLD"),
])
def test_tier_from_growth_uses_default_thresholds(growth, tier):
    assert tiers.tier_for(growth, DEFAULT) == tier


def test_tier_follows_the_merchants_own_thresholds():
    config = MerchantConfig(tier_thresholds=(0, 10, 20, 30))
    assert tiers.tier_for(9, config) == "REGULAR"
    assert tiers.tier_for(10, config) == "SILVER"
    assert tiers.tier_for(30, config) == "BLACK_GOLD"
    assert tiers.multiplier_bp(25, config) == 15_000
    assert tiers.discount_bp(25, config) == 9_000


@given(st.integers(min_value=0, max_value=10**7), st.integers(min_value=0, max_value=10**7))
def test_tier_never_drops_as_growth_rises(a, b):
    low, high = sorted((a, b))
    order = ("REGULAR", "SILVER", "GOLD", "BLACK_GOLD")
    assert order.index(tiers.tier_for(low, DEFAULT)) <= order.index(tiers.tier_for(high, DEFAULT))


@pytest.mark.parametrize("paid_fen, multiplier, points, growth", [
    (0, 10_000, 0, 0), (99, 10_000, 0, 0), (100, 10_000, 1, 1), (12_345, 10_000, 123, 123),
    (12_345, 12_000, 147, 123),  # 123 × 1.2 = 147.6 → 147
    (999, 15_000, 13, 9),  # 9 × 1.5 = 13.5 → 13
    (10_000, 20_000, 200, 100),
])
def test_points_per_whole_yuan_times_multiplier_rounded_down(paid_fen, multiplier, points, growth):
    earning = earn_for_payment(paid_fen, multiplier)
    assert (earning.points, earning.growth) == (points, growth)


@given(st.integers(min_value=0, max_value=10**12), st.sampled_from(DEFAULT.points_multiplier_bp))
def test_points_are_never_negative_nor_more_than_exact(paid_fen, multiplier):
    earning = earn_for_payment(paid_fen, multiplier)
    assert earning.growth == paid_fen // 100
    assert 0 <= earning.points * 10_000 <= earning.growth * multiplier
    assert earning.growth * multiplier - earning.points * 10_000 < 10_000


def test_points_stay_frozen_for_the_after_sales_window():
    paid = datetime(2025, 1, 31, 16, 0, tzinfo=timezone.utc)
    assert frozen_until(paid, DEFAULT.points_frozen_days) == paid + timedelta(days=7)


def test_sandbox_provider_accepts_sandbox_codes():
    identity = SandboxProvider().exchange("sandbox:u_123-AB", "H5")
    assert identity.unionid == "u_123-AB"
    assert identity.openid == sandbox_openid("H5", "u_123-AB")
    assert identity.openid.startswith("sbx-") and len(identity.openid) == 28


def test_sandbox_openid_differs_per_channel_and_is_deterministic():
    p = SandboxProvider()
    assert p.exchange("sandbox:x", "H5").openid == p.exchange("sandbox:x", "H5").openid
    assert p.exchange("sandbox:x", "H5").openid != p.exchange("sandbox:x", "MINI_PROGRAM").openid


@pytest.mark.parametrize("code", ["", "sandbox:", "wx:abc", "sandbox:a b", "sandbox:" + "a" * 65,
                                  "SANDBOX:abc", "sandbox:é"])
def test_sandbox_provider_rejects_other_codes(code):
    with pytest.raises(InvalidLoginCode):
        SandboxProvider().exchange(code, "H5")


def test_password_hash_verifies_only_the_right_password():
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("correct hors", stored)
    assert not verify_password("correct horse", "garbage")


def test_password_hashes_are_salted():
    assert hash_password("same-password") != hash_password("same-password")


def test_config_round_trips_and_fills_defaults():
    config = MerchantConfig(tier_thresholds=(0, 1, 2, 3), login_providers={"MINI_PROGRAM": "wechat"})
    assert MerchantConfig.from_doc(config.to_doc()) == config
    assert MerchantConfig.from_doc({}) == DEFAULT
    assert config.provider_for("MINI_PROGRAM") == "wechat"
    assert config.provider_for("H5") == "sandbox"


def test_merchant_codes_time_zones_and_key_hashes():
    assert CODE.match("shop-01") and not CODE.match("Shop") and not CODE.match("a")
    assert valid_time_zone("Asia/Shanghai") and not valid_time_zone("Mars/Base")
    assert key_hash("k" * 20) == key_hash("k" * 20) != key_hash("k" * 21)
    assert "k" * 20 not in key_hash("k" * 20)
