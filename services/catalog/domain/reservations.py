"""The reservation aggregate: units of one or more SKUs held for one order until it is
paid (COMMITTED) or given up (RELEASED).

A reservation is written before any stock is touched and is `confirmed` once every line
is held; only a confirmed one can be committed. A state change is claimed first (with its
event) and the stock moves after it (`settled` once it has), so a commit and a release can
never both happen and an interrupted move is finished later. A payment that reaches a
released reservation holds its units again under a late key (COMMITTED), or reports them
UNFULFILLABLE for the order service to refund.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from siyu_kit.aggregate import Aggregate, Move
from siyu_kit.errors import FailedPrecondition

from services.catalog.domain.stock import (COMMITTED, PAID_AFTER_RELEASE, RELEASED, RESERVATIONS, RESERVED,
                                           UNFULFILLABLE, late_hold_key)


@dataclass(frozen=True)
class Line:
    sku_id: str
    quantity: int


# The events a reservation records; each is published with the reservation as it is
# after the change.
@dataclass(frozen=True)
class ReservationReserved:
    """Every line is held."""


@dataclass(frozen=True)
class ReservationCommitted:
    """Paid: the held units are sold."""


@dataclass(frozen=True)
class ReservationReleased:
    """Given up: the held units are free again."""


@dataclass(frozen=True)
class ReservationUnfulfillable:
    """Paid after its release, and the units are gone: the payment is to be refunded."""


@dataclass
class Reservation(Aggregate):
    id: str
    merchant_id: str
    order_id: str
    lines: tuple[Line, ...]
    expires_at: datetime
    state: str = RESERVED
    confirmed: bool = False
    settled: bool = True
    flash_sale_id: str = ""
    member_id: str = ""
    hold_key: str = ""
    unfulfillable: bool = False
    last_event_id: str = ""
    created_at: datetime | None = None
    version: int = 1

    @classmethod
    def open(cls, reservation_id: str, merchant_id: str, order_id: str, lines: list[tuple[str, int]],
             expires_at: datetime, now: datetime) -> "Reservation":
        """A new reservation, written before any line is held."""
        return cls(reservation_id, merchant_id, order_id, tuple(Line(s, q) for s, q in lines), expires_at,
                   created_at=now)

    @classmethod
    def of_flash_sale(cls, reservation_id: str, merchant_id: str, order_id: str, sku_id: str, quantity: int,
                      expires_at: datetime, flash_sale_id: str, member_id: str, now: datetime) -> "Reservation":
        """A flash sale's reservation is born holding its units (the pool took them first)."""
        reservation = cls(reservation_id, merchant_id, order_id, (Line(sku_id, quantity),), expires_at,
                          confirmed=True, flash_sale_id=flash_sale_id, member_id=member_id, created_at=now)
        reservation.record(ReservationReserved())
        return reservation

    @property
    def units_key(self) -> str:
        """The key its units are held under: its id, or its late key once a payment that came
        after the release held them again."""
        return self.hold_key or self.id

    @property
    def phase(self) -> str:
        """The state, with UNFULFILLABLE for a released one whose late payment found no units."""
        return UNFULFILLABLE if self.unfulfillable else self.state

    def confirm(self) -> Move:
        """Every line is held: the reservation can be committed from now on."""
        if self.state != RESERVED:
            raise FailedPrecondition("the reservation was released", reason="RESERVATION_RELEASED")
        if self.confirmed:
            return Move.REPEAT
        self.confirmed = True
        self.record(ReservationReserved())
        return Move.APPLY

    def move_to(self, target: str, event_id: str = "") -> Move:
        """RESERVED → COMMITTED or RELEASED; the stock is to be moved after the change is saved."""
        move = RESERVATIONS.decide(self.state, target)
        if move is Move.REPEAT:
            return move
        if move is Move.REFUSE:
            raise FailedPrecondition(f"the reservation is {self.state}", reason=f"RESERVATION_{self.state}")
        if target == COMMITTED and not self.confirmed:
            raise FailedPrecondition("the reservation does not hold every line", reason="RESERVATION_INCOMPLETE")
        self.state, self.settled, self.last_event_id = target, False, event_id
        self.record(ReservationCommitted() if target == COMMITTED else ReservationReleased())
        return move

    @property
    def late_key(self) -> str:
        return late_hold_key(self.id)

    def paid_after_release(self, held_again: bool, event_id: str = "") -> Move:
        """A payment reached this released reservation: sold if its units were held again
        under `late_key`, otherwise unfulfillable."""
        target = COMMITTED if held_again else UNFULFILLABLE
        move = PAID_AFTER_RELEASE.decide(self.phase, target)
        if move is Move.REPEAT:
            return move
        PAID_AFTER_RELEASE.require(self.phase, target)
        self.hold_key, self.settled, self.last_event_id = self.late_key, False, event_id
        if held_again:
            self.state = COMMITTED
            self.record(ReservationCommitted())
        else:
            self.unfulfillable = True
            self.record(ReservationUnfulfillable())
        return move

    def settle(self) -> None:
        """The stock has moved as the state says."""
        self.settled = True


__all__ = ["Line", "Reservation", "ReservationCommitted", "ReservationReleased", "ReservationReserved",
           "ReservationUnfulfillable", "RESERVED", "COMMITTED", "RELEASED"]
