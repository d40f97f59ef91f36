"""Money rules: discount splits always add up, rates round half up."""
from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, strategies as st

from siyu_kit.money import apply_rate, split_largest_remainder, yuan_floor

totals = st.integers(min_value=0, max_value=10**12)
weight_lists = st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=30)


@given(totals, weight_lists)
def test_split_parts_add_up_exactly_and_are_never_negative(total, weights):
    parts = split_largest_remainder(total, weights)
    assert len(parts) == len(weights)
    assert sum(parts) == total
    assert all(p >= 0 for p in parts)


@given(totals, weight_lists)
def test_split_parts_are_within_one_unit_of_the_exact_share(total, weights):
    parts = split_largest_remainder(total, weights)
    weight_sum = sum(weights) or len(weights)
    effective = weights if sum(weights) else [1] * len(weights)
    for part, weight in zip(parts, effective):
        exact = Fraction(total * weight, weight_sum)
        assert exact - 1 < part < exact + 1


@given(totals, weight_lists)
def test_split_is_deterministic(total, weights):
    assert split_largest_remainder(total, list(weights)) == split_largest_remainder(total, list(weights))


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=1, max_value=40))
def test_split_over_equal_weights_gives_leftover_units_to_the_earliest_parts(total, n):
    parts = split_largest_remainder(total, [7] * n)
    base, left = divmod(total, n)
    assert parts == [base + 1] * left + [base] * (n - left)


def test_split_ties_break_towards_earlier_parts():
    assert split_largest_remainder(1, [1, 1, 1]) == [1, 0, 0]
    assert split_largest_remainder(2, [1, 1, 1]) == [1, 1, 0]
    assert split_largest_remainder(100, [1, 2]) == [33, 67]
    assert split_largest_remainder(10, [0, 0]) == [5, 5]


def test_split_rejects_impossible_input():
    with pytest.raises(ValueError):
        split_largest_remainder(-1, [1])
    with pytest.raises(ValueError):
        split_largest_remainder(10, [1, -1])
    with pytest.raises(ValueError):
        split_largest_remainder(5, [])
    assert split_largest_remainder(0, []) == []


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=10**6))
def test_apply_rate_rounds_half_up(amount, rate_bp):
    result = apply_rate(amount, rate_bp)
    exact = Fraction(amount * rate_bp, 10_000)
    assert result >= 0
    assert exact - Fraction(1, 2) < result <= exact + Fraction(1, 2)
    # Exactly half a fen rounds up.
    if exact.denominator == 2:
        assert result == exact + Fraction(1, 2)


def test_apply_rate_examples():
    assert apply_rate(10_000, 10_000) == 10_000
    assert apply_rate(199, 5_000) == 100  # 99.5 → 100
    assert apply_rate(1, 4_999) == 0
    assert apply_rate(0, 123) == 0
    with pytest.raises(ValueError):
        apply_rate(-1, 100)
    with pytest.raises(ValueError):
        apply_rate(100, -1)


@given(st.integers(min_value=-10**9, max_value=10**12))
def test_yuan_floor_counts_whole_yuan_and_never_goes_negative(amount):
    result = yuan_floor(amount)
    assert result >= 0
    if amount >= 0:
        assert result * 100 <= amount < (result + 1) * 100
