"""Wall-clock time in epoch milliseconds, the unit this service stores."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

Clock = Callable[[], int]


def now_ms() -> int:
    return int(datetime.now(timezone.utc).timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc)
