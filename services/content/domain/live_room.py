"""Rules of a live room's figures and announcements: who counts as a viewer, when the
room hears of a change, and how a buyer is shown ("someone just bought")."""
from __future__ import annotations

from dataclasses import dataclass

# The room hears of its viewer figures at most this often.
ANNOUNCE_EVERY_MS = 1000
# A report names at most this many members who joined since the last one.
MAX_JOINED = 5000
ANONYMOUS = "匿名用户"


@dataclass(frozen=True)
class Lease:
    """One gateway process's viewers of a session, counted until `expires_ms`."""
    gateway_id: str
    concurrent: int
    expires_ms: int


def concurrent_of(leases: list[Lease], now_ms: int) -> int:
    """Viewers connected now: the sum over the leases that have not expired."""
    return sum(lease.concurrent for lease in leases if lease.expires_ms > now_ms)


@dataclass(frozen=True)
class Figures:
    unique: int = 0
    concurrent: int = 0
    peak: int = 0


def should_announce(current: Figures, announced: Figures, announced_ms: int, now_ms: int) -> bool:
    """A figure changed since the room last heard, and a second has passed since then."""
    return current != announced and now_ms - announced_ms >= ANNOUNCE_EVERY_MS


def masked_nickname(name: str) -> str:
    """The first character, then one `*` per remaining character (at least one): 小* / 张**.
    No name at all: 匿名用户."""
    name = (name or "").strip()
    if not name:
        return ANONYMOUS
    return name[0] + "*" * max(1, len(name) - 1)


@dataclass(frozen=True)
class Purchase:
    """A paid order attributed to a live session, as the room is told of it."""
    merchant_id: str
    order_id: str
    live_session_id: str
    buyer_name: str  # the recipient's or member's name as the order carries it; "" when none
    product_id: str
    product_title: str
    quantity: int
    at_ms: int

    @property
    def masked_name(self) -> str:
        return masked_nickname(self.buyer_name)
