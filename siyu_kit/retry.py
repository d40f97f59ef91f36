"""The one read–decide–write loop: retry a compare-and-set a few times, then give up
with ABORTED so the caller can try again later."""
from __future__ import annotations

from typing import Awaitable, Callable, TypeVar

from siyu_kit.aggregate import StaleVersion
from siyu_kit.errors import Conflict, DomainError

T = TypeVar("T")

ATTEMPTS = 3


async def on_conflict(attempt: Callable[[], Awaitable[T]], *, gave_up: str, reason: str = "CONCURRENT_UPDATE",
                      attempts: int = ATTEMPTS, error: type[DomainError] = Conflict) -> T:
    """Runs `attempt` (read, decide, save) until it does not raise StaleVersion, at most
    `attempts` times; then raises `error(gave_up)`, ABORTED unless the contract says
    otherwise. Each attempt must read afresh."""
    for _ in range(attempts):
        try:
            return await attempt()
        except StaleVersion:
            continue
    raise error(gave_up, reason=reason)
