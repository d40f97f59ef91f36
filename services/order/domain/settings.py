"""Per-merchant order settings, their defaults and the bounds a merchant may set."""
from __future__ import annotations

from dataclasses import dataclass

from siyu_kit.money import MAX_AMOUNT, amount_ok

DAY_S = 24 * 3600
DEFAULT_UNPAID_EXPIRY_S = 30 * 60
DEFAULT_FLASH_SALE_EXPIRY_S = 10 * 60
DEFAULT_AUTO_CONFIRM_DAYS = 10
DEFAULT_AFTER_SALES_DAYS = 7

# Short expiries are allowed so tests and benchmarks can watch an order expire.
EXPIRY_RANGE_S = (1, 7 * DAY_S)
AUTO_CONFIRM_RANGE_DAYS = (1, 30)
AFTER_SALES_RANGE_DAYS = (0, 30)
MAX_THRESHOLD_REDUCTIONS = 10


@dataclass(frozen=True)
class ThresholdReduction:
    """满减: a goods amount at or above `threshold` takes `reduction` off."""
    threshold: int
    reduction: int


@dataclass(frozen=True)
class OrderSettings:
    # How long an order waits for payment before it is cancelled and its stock freed.
    unpaid_expiry_s: int = DEFAULT_UNPAID_EXPIRY_S
    flash_sale_expiry_s: int = DEFAULT_FLASH_SALE_EXPIRY_S
    # Receipt is confirmed automatically this long after shipping.
    auto_confirm_days: int = DEFAULT_AUTO_CONFIRM_DAYS
    # After-sales requests are accepted this long after completion.
    after_sales_days: int = DEFAULT_AFTER_SALES_DAYS
    # Thresholds strictly increasing; the highest one the goods amount reaches applies.
    threshold_reductions: tuple[ThresholdReduction, ...] = ()
    # A flat fee per order, waived when the goods amount reaches free_shipping_over > 0.
    shipping_fee: int = 0
    free_shipping_over: int = 0
    # 0 while the merchant runs on the defaults.
    version: int = 0


DEFAULTS = OrderSettings()


def violations(s: OrderSettings, prefix: str = "settings.") -> list[tuple[str, str]]:
    """(field, description) for every value out of bounds; field names follow the API."""
    found: list[tuple[str, str]] = []

    def check(ok: bool, field: str, description: str) -> None:
        if not ok:
            found.append((prefix + field, description))

    low, high = EXPIRY_RANGE_S
    check(low <= s.unpaid_expiry_s <= high, "unpaid_expiry_seconds", f"{low}..{high} seconds")
    check(low <= s.flash_sale_expiry_s <= high, "flash_sale_expiry_seconds", f"{low}..{high} seconds")
    low, high = AUTO_CONFIRM_RANGE_DAYS
    check(low <= s.auto_confirm_days <= high, "auto_confirm_days", f"{low}..{high} days")
    low, high = AFTER_SALES_RANGE_DAYS
    check(low <= s.after_sales_days <= high, "after_sales_days", f"{low}..{high} days")
    rules = s.threshold_reductions
    check(len(rules) <= MAX_THRESHOLD_REDUCTIONS, "threshold_reductions", f"at most {MAX_THRESHOLD_REDUCTIONS}")
    for i, rule in enumerate(rules):
        field = f"threshold_reductions[{i}]"
        check(amount_ok(rule.threshold, 1), f"{field}.threshold", f"1..{MAX_AMOUNT}")
        check(0 < rule.reduction < rule.threshold, f"{field}.reduction", "positive and less than the threshold")
        if i:
            check(rule.threshold > rules[i - 1].threshold, f"{field}.threshold",
                  f"must be greater than threshold_reductions[{i - 1}].threshold")
    check(amount_ok(s.shipping_fee), "shipping_fee", f"0..{MAX_AMOUNT}")
    check(amount_ok(s.free_shipping_over), "free_shipping_over", f"0..{MAX_AMOUNT}")
    return found


def reduction_for(rules: tuple[ThresholdReduction, ...], goods_amount: int) -> ThresholdReduction | None:
    """The rule of the highest threshold `goods_amount` reaches, if any."""
    reached = [r for r in rules if goods_amount >= r.threshold]
    return max(reached, key=lambda r: r.threshold) if reached else None

