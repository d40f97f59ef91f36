"""Stock and reservations: states, the movements of the stock ledger, the rule that a
SKU's stock numbers always equal the sum of its movements, and the guarded changes that
move a SKU's counters (each one conditional update that owes the ledger its movement)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from siyu_kit.aggregate import StateMachine

# Reservation states: RESERVED → COMMITTED (paid) or RESERVED → RELEASED (cancelled,
# expired, or not enough stock).
RESERVED = "RESERVED"
COMMITTED = "COMMITTED"
RELEASED = "RELEASED"

RESERVATIONS = StateMachine("reservation", {RESERVED: {COMMITTED, RELEASED}, COMMITTED: (), RELEASED: ()},
                            refused_reason="STATUS_TRANSITION")

# A payment that reaches a RELEASED reservation: its units are held again and sold
# (COMMITTED), or they are gone and the reservation is reported UNFULFILLABLE (it stays
# RELEASED; the order service refunds the payment). Both are final.
UNFULFILLABLE = "UNFULFILLABLE"
PAID_AFTER_RELEASE = StateMachine("released reservation", {RESERVED: (), RELEASED: {COMMITTED, UNFULFILLABLE},
                                                           COMMITTED: (), UNFULFILLABLE: ()},
                                  refused_reason="STATUS_TRANSITION")


def can_transition(current: str, target: str) -> bool:
    return RESERVATIONS.can(current, target) if current in RESERVATIONS.moves else False


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


# ---- guarded changes of a SKU's stock

@dataclass(frozen=True)
class Movement:
    """What a stock change owes the ledger."""
    kind: str
    sku_id: str
    quantity: int
    reference: str = ""
    reason: str = ""

    @property
    def id(self) -> str:
        return movement_id(self.kind, self.sku_id, self.reference)

    @property
    def deltas(self) -> Deltas:
        return deltas(self.kind, self.quantity)


# The maps of a stock that mark a change as applied, so a retried change cannot count twice.
HOLDS = "holds"
ADJUSTMENTS = "adjustments"
RETURNS = "returns"


@dataclass(frozen=True)
class Mark:
    """The guard and the marker of one change: the entry `book[key]` must be absent
    (`before` None) or hold exactly `before`; afterwards it holds `after` (None: removed)."""
    book: str
    key: str
    before: int | None
    after: int | None


@dataclass(frozen=True)
class StockChange:
    """One guarded change of one SKU's stock, applied whole or not at all: the counters move
    by the movement's deltas only while `mark` holds and at least `min_available` units are
    available; the same write records the movement it owes the ledger. Never read the
    levels and write them back: a counter many buyers race for moves only by this."""
    movement: Movement
    mark: Mark
    min_available: int = 0

    @property
    def sku_id(self) -> str:
        return self.movement.sku_id

    @property
    def deltas(self) -> Deltas:
        return self.movement.deltas

    @classmethod
    def hold(cls, sku_id: str, key: str, quantity: int) -> "StockChange":
        """Available into reserved for one reservation (or a late hold), once."""
        return cls(Movement(RESERVE, sku_id, quantity, key), Mark(HOLDS, key, None, quantity), quantity)

    @classmethod
    def unhold(cls, sku_id: str, key: str, quantity: int) -> "StockChange":
        """Held units back to available, only while this key still holds them."""
        return cls(Movement(RELEASE, sku_id, quantity, key), Mark(HOLDS, key, quantity, None))

    @classmethod
    def sell(cls, sku_id: str, key: str, quantity: int) -> "StockChange":
        """Held units are sold: they leave on_hand and reserved."""
        return cls(Movement(COMMIT, sku_id, quantity, key), Mark(HOLDS, key, quantity, None))

    @classmethod
    def adjust(cls, sku_id: str, key: str, delta: int, reason: str) -> "StockChange":
        """Restock (+) or write off (−, only out of available), once per idempotency key."""
        return cls(Movement(ADJUST, sku_id, delta, key, reason), Mark(ADJUSTMENTS, key, None, delta),
                   -delta if delta < 0 else 0)

    @classmethod
    def give_back(cls, sku_id: str, return_id: str, quantity: int, reason: str = "") -> "StockChange":
        """Refunded units back on hand, once per return id."""
        return cls(Movement(RETURN, sku_id, quantity, return_id, reason), Mark(RETURNS, return_id, None, quantity))

    @classmethod
    def pool_out(cls, sku_id: str, sale_id: str, units: int) -> "StockChange":
        """A flash sale's units leave available, held under the sale's id."""
        return cls(Movement(POOL_OUT, sku_id, units, sale_id), Mark(HOLDS, sale_id, None, units), units)


@dataclass(frozen=True)
class Stock:
    """A SKU's stock as read: its levels, what it holds for whom, and the changes marked
    applied. Reading it never decides a change of the counters (see StockChange)."""
    sku_id: str
    merchant_id: str
    product_id: str
    on_hand: int
    reserved: int
    available: int
    holds: dict[str, int] = field(default_factory=dict)
    adjustments: dict[str, int] = field(default_factory=dict)
    # Movements a write owes the ledger and a crash left unstored.
    owed: tuple[tuple[Movement, int], ...] = ()  # (movement, at_ms)

    @property
    def levels(self) -> Levels:
        return Levels(self.on_hand, self.reserved, self.available)

    def adjustment(self, key: str) -> int | None:
        return self.adjustments.get(key)
