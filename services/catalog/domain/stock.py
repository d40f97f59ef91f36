"""Stock and reservations: states, the movements of the stock ledger, and the rule
that a SKU's stock numbers always equal the sum of its movements."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

# Reservation states: RESERVED → COMMITTED (paid) or RESERVED → RELEASED (cancelled,
# expired, or not enough stock).
RESERVED = "RESERVED"
COMMITTED = "COMMITTED"
RELEASED = "RELEASED"

_NEXT = {RESERVED: {COMMITTED, RELEASED}}


def can_transition(current: str, target: str) -> bool:
    return target in _NEXT.get(current, set())


# A payment that reaches a RELEASED reservation holds its units again under a second key,
# so nothing left over from the release (a late retry of its unhold, its ledger movements,
# which are keyed by reservation) can touch the new hold.
_LATE = "-late"


def late_hold_key(reservation_id: str) -> str:
    return reservation_id + _LATE


def reservation_of_hold(hold_key: str) -> str:
    return hold_key.removesuffix(_LATE)


# Movement kinds of the stock ledger.
INITIAL = "INITIAL"
RESERVE = "RESERVE"
RELEASE = "RELEASE"
COMMIT = "COMMIT"
# Staff restock (+) or write-off (−): the only kind whose quantity is signed.
ADJUST = "ADJUST"
# Refunded units that never shipped come back.
RETURN = "RETURN"
# Units move into a flash sale's pool, held like a reservation, and unsold ones come back.
POOL_OUT = "POOL_OUT"
POOL_IN = "POOL_IN"
KINDS = (INITIAL, RESERVE, RELEASE, COMMIT, ADJUST, RETURN, POOL_OUT, POOL_IN)


@dataclass(frozen=True)
class Deltas:
    on_hand: int = 0
    reserved: int = 0
    available: int = 0


def deltas(kind: str, quantity: int) -> Deltas:
    """How one movement of `quantity` units changes a SKU's stock.

    `quantity` is signed for ADJUST (negative writes off) and never negative otherwise.
    """
    if kind == ADJUST:
        return Deltas(on_hand=quantity, available=quantity)
    if quantity < 0:
        raise ValueError("quantity must not be negative")
    if kind in (INITIAL, RETURN):
        return Deltas(on_hand=quantity, available=quantity)
    if kind == RESERVE:
        return Deltas(reserved=quantity, available=-quantity)
    if kind == RELEASE:
        return Deltas(reserved=-quantity, available=quantity)
    if kind == COMMIT:
        return Deltas(on_hand=-quantity, reserved=-quantity)
    if kind == POOL_OUT:
        return Deltas(reserved=quantity, available=-quantity)
    if kind == POOL_IN:
        return Deltas(reserved=-quantity, available=quantity)
    raise ValueError(f"unknown movement kind {kind!r}")


def sales_delta(kind: str, quantity: int) -> int:
    """How a movement changes its product's units-sold count."""
    return {COMMIT: quantity, RETURN: -quantity}.get(kind, 0)


def movement_id(kind: str, sku_id: str, reservation_id: str = "") -> str:
    """One movement per (kind, reservation, SKU): a retried write cannot count twice."""
    return f"{kind}:{reservation_id}:{sku_id}" if reservation_id else f"{kind}:{sku_id}"


@dataclass(frozen=True)
class Levels:
    on_hand: int = 0
    reserved: int = 0
    available: int = 0

    def apply(self, d: Deltas) -> "Levels":
        return Levels(self.on_hand + d.on_hand, self.reserved + d.reserved, self.available + d.available)

    def consistent(self) -> bool:
        """available = on_hand − reserved, and nothing is negative."""
        return (self.available == self.on_hand - self.reserved
                and min(self.on_hand, self.reserved, self.available) >= 0)


def recompute(movements: Iterable[Deltas]) -> Levels:
    """A SKU's stock as its ledger says it is."""
    levels = Levels()
    for d in movements:
        levels = levels.apply(d)
    return levels
