"""Per-merchant order settings and their defaults."""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_UNPAID_EXPIRY_S = 30 * 60


@dataclass(frozen=True)
class OrderSettings:
    # How long an order waits for payment before it is cancelled and its stock freed.
    unpaid_expiry_s: int = DEFAULT_UNPAID_EXPIRY_S


DEFAULTS = OrderSettings()
