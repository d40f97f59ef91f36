"""Money is an integer number of minor units (fen). Rates are basis points."""
from __future__ import annotations

DEFAULT_CURRENCY = "CNY"
BASIS_POINTS = 10_000
# The largest amount any request may carry: 100,000,000 CNY. With at most 50 order lines of
# at most 9,999 units, every total (lines × quantity × price + fees) stays far inside int64.
MAX_AMOUNT = 10_000_000_000
INT64_MAX = 2**63 - 1


def amount_ok(amount: int, minimum: int = 0) -> bool:
    """`minimum` ≤ amount ≤ MAX_AMOUNT."""
    return minimum <= amount <= MAX_AMOUNT


def split_largest_remainder(total: int, weights: list[int]) -> list[int]:
    """Split `total` over `weights` in proportion; the parts always add up to `total`.

    Each part gets the floor of its exact share; the units left over go one each to the
    parts with the largest remainders (earlier parts win ties), so no fen is lost.
    """
    if total < 0:
        raise ValueError("total must not be negative")
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    if not weights:
        if total:
            raise ValueError("cannot split a non-zero total over no parts")
        return []
    weight_sum = sum(weights)
    if weight_sum == 0:
        # Nothing to weigh by: split evenly.
        weights = [1] * len(weights)
        weight_sum = len(weights)
    parts = []
    remainders = []
    for index, weight in enumerate(weights):
        share, remainder = divmod(total * weight, weight_sum)
        parts.append(share)
        remainders.append((-remainder, index))
    left = total - sum(parts)
    for _, index in sorted(remainders)[:left]:
        parts[index] += 1
    return parts


def apply_rate(amount: int, rate_bp: int) -> int:
    """`amount` × rate in basis points, rounded half up, in minor units."""
    if amount < 0 or rate_bp < 0:
        raise ValueError("amount and rate must not be negative")
    return (amount * rate_bp + BASIS_POINTS // 2) // BASIS_POINTS


def yuan_floor(amount: int) -> int:
    """Whole yuan in an amount of fen (points and growth are earned per whole yuan)."""
    return max(amount, 0) // 100
