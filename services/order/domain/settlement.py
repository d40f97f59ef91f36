"""When an order settles: its after-sales window (the merchant's after_sales_days after
completion) has closed. The settle job (application/settlement.py) scans orders whose
earliest possible settlement time has come, checks each against its merchant's current
window, and settles it with one conditional write that also carries order.settled."""
from __future__ import annotations

from datetime import datetime, timedelta


DAY_MS = 86_400_000


def epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)
# Orders looked at per run of the job; the next run takes the rest.
SETTLE_BATCH = 200


def due_ms(completed_at: datetime, after_sales_days: int) -> int:
    """When the order's after-sales window closes (epoch ms)."""
    return epoch_ms(completed_at + timedelta(days=after_sales_days))


def is_due(completed_at: datetime | None, after_sales_days: int, now: datetime) -> bool:
    return completed_at is not None and due_ms(completed_at, after_sales_days) <= epoch_ms(now)
