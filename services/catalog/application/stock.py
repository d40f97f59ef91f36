"""Stock use cases: reserve all lines or none, commit, release, and the sweeper.

A reservation is written before any stock is touched, so an interrupted reserve leaves a
record the sweeper can release. Each line moves by one conditional atomic update keyed
by the reservation id in the SKU's `holds` map, so every step can be retried. Commit and
release first claim the reservation's state (compare-and-set, with the event in the same
write) and then move the stock, so a commit and a release can never both happen; a move
that was interrupted is finished by a retry or by the sweeper.

Only the order service may release a reservation that has an order: the sweeper asks it
what became of the order of each expired reservation. A payment that still reaches a
released reservation holds the units again when they are there, every line or none;
otherwise the reservation says so in an `unfulfillable` event and the order service
refunds the payment.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Awaitable, Callable, TypeVar

from siyu_kit import context, delays, logging as slog, retry
from siyu_kit.aggregate import Move, StaleVersion
from siyu_kit.cancellation import require_time, shielded
from siyu_kit.errors import AlreadyExists, DomainError, FailedPrecondition, FieldViolation, NotFound
from siyu_kit.protos import utcnow

from services.catalog.application import validation
from services.catalog.application.ledger import Ledger
from services.catalog.application.pools import Pools
from services.catalog.application.ports import COMMIT, RELEASE, OrderVerdicts, ReservationRepository, StockRepository
from services.catalog.domain import stock as rules
from services.catalog.domain.reservations import Reservation
from services.catalog.domain.stock import Stock, StockChange

log = slog.get("siyu.catalog.stock")
T = TypeVar("T")

SWEEP_BATCH = 100
# A state claimed this long ago whose stock has not moved was interrupted.
SETTLE_GRACE = timedelta(seconds=30)
# A reserve with less than this left of its caller's deadline is refused before it starts:
# the few round trips it takes would not finish in time.
RESERVE_MIN_TIME_S = 0.1
# Compare-and-set attempts on one reservation before the caller is told to try again.
ATTEMPTS = 10
BUSY = "the reservation keeps changing; try again"


class StockUseCases:
    def __init__(self, reservations: ReservationRepository, stock: StockRepository, ledger: Ledger, pools: Pools,
                 orders: OrderVerdicts, clock: Callable[[], datetime] = utcnow):
        self.reservations = reservations
        self.stock = stock
        self.ledger = ledger
        self.pools = pools
        # Says what may become of an order's expired reservation (the sweeper).
        self.orders = orders
        self.clock = clock
        self._sweep_after = ""

    # ---- reading

    async def _get(self, merchant_id: str, reservation_id: str) -> Reservation:
        reservation = await self.reservations.get(merchant_id, reservation_id)
        if reservation is None:
            raise NotFound("no such reservation")
        return reservation

    async def _reload(self, reservation: Reservation) -> Reservation:
        return await self._get(reservation.merchant_id, reservation.id)

    async def _retrying(self, first: Reservation, attempt: Callable[[Reservation], Awaitable[T]]) -> T:
        """The read–decide–write loop on one reservation: the first attempt uses the
        reservation in hand, every later one reads it afresh."""
        held = [first]

        async def once() -> T:
            return await attempt(held.pop() if held else await self._reload(first))

        # A reservation that keeps changing has always been answered FAILED_PRECONDITION.
        return await retry.on_conflict(once, gave_up=BUSY, reason="RESERVATION_BUSY", attempts=ATTEMPTS,
                                       error=FailedPrecondition)

    # ---- moving the stock after a state change

    async def _settle(self, reservation: Reservation) -> None:
        """Move the stock of a COMMITTED or RELEASED reservation; each line at most once."""
        merchant_id, key = reservation.merchant_id, reservation.units_key
        if reservation.flash_sale_id:
            # The units are in the flash sale's pool: the pool moves and the stock follows it.
            await self.pools.settle(reservation)
        else:
            for line in reservation.lines:
                if reservation.state == rules.COMMITTED:
                    change = StockChange.sell(line.sku_id, key, line.quantity)
                    sold = await self.stock.apply_and_read(merchant_id, change)
                    if sold is not None:
                        await self.ledger.record(merchant_id, change.movement, sold.product_id)
                else:
                    change = StockChange.unhold(line.sku_id, key, line.quantity)
                    if await self.stock.apply(merchant_id, change):
                        await self.ledger.record(merchant_id, change.movement)
        await self.reservations.mark_settled(reservation)
        reservation.settle()

    async def _move(self, reservation: Reservation, target: str, event_id: str = "") -> Reservation:
        """RESERVED → target, compare-and-set; an already reached target is a no-op."""
        async def attempt(current: Reservation) -> Reservation:
            if current.state == target:
                if not current.settled:
                    await self._settle(current)
                    current = await self._reload(current)
                return current
            current.move_to(target, event_id)
            await self.reservations.save(current)
            await self._settle(current)
            return current

        return await self._retrying(reservation, attempt)

    async def _hold_again(self, reservation: Reservation, key: str) -> bool:
        """Hold every line again under `key`; False as soon as one cannot be held (what was
        held is given back by settling the reservation)."""
        if reservation.flash_sale_id:
            return await self.pools.hold_again(reservation, key)
        merchant_id = reservation.merchant_id
        for line in reservation.lines:
            change = StockChange.hold(line.sku_id, key, line.quantity)
            if await self.stock.apply(merchant_id, change):
                await self.ledger.record(merchant_id, change.movement)
            elif not await self.stock.holds(merchant_id, line.sku_id, key):
                return False
        return True

    async def _paid_after_release(self, reservation: Reservation, event_id: str) -> Reservation:
        """A payment reached a RELEASED reservation (its order was written after the sweeper
        released it, or an older release): sell the units if they can be held again, every
        line or none; otherwise mark it unfulfillable, with the event the order service
        refunds on, in one write. Repeats find the outcome and finish its stock move."""
        async def attempt(current: Reservation) -> Reservation:
            if current.state == rules.COMMITTED:
                if not current.settled:
                    await self._settle(current)
                return await self._reload(current)
            if current.unfulfillable:
                # Also gives back a line a concurrent attempt may have held after the first settle.
                await self._settle(current)
                return current
            if not current.settled:
                # Finish the release first: its unhold must not race the new holds.
                await self._settle(current)
                raise StaleVersion("look again once the release has moved the stock")
            current.paid_after_release(await self._hold_again(current, current.late_key), event_id)
            await self.reservations.save(current)
            await self._settle(current)
            if current.unfulfillable:
                log.warning("reservation.unfulfillable", reservation_id=current.id, order_id=current.order_id)
            return current

        return await self._retrying(reservation, attempt)

    async def _paid(self, merchant_id: str, reservation_id: str, event_id: str) -> Reservation:
        reservation = await self._get(merchant_id, reservation_id)
        if reservation.state != rules.RELEASED:
            try:
                return await self._move(reservation, rules.COMMITTED, event_id)
            except FailedPrecondition as error:
                if error.reason != "RESERVATION_RELEASED":
                    raise
                reservation = await self._reload(reservation)  # released meanwhile
        return await self._paid_after_release(reservation, event_id)

    # ---- reserving

    async def _hold_all(self, reservation: Reservation) -> Reservation:
        merchant_id, rid = reservation.merchant_id, reservation.id
        for i, line in enumerate(reservation.lines):
            change = StockChange.hold(line.sku_id, rid, line.quantity)
            # The hold's movement stays owed in the stock document (written by the same
            # update) and the ledger writer job stores it: two commands off the order's path.
            if await self.stock.apply(merchant_id, change):
                continue
            if not await self.stock.holds(merchant_id, line.sku_id, rid):
                await self._move(await self._reload(reservation), rules.RELEASED)
                await self._require_skus(merchant_id, [l.sku_id for l in reservation.lines])
                raise FailedPrecondition(f"not enough stock for sku {line.sku_id}", reason="OUT_OF_STOCK",
                                         violations=[FieldViolation(f"lines[{i}].quantity", "not enough stock")])

        async def attempt(current: Reservation) -> Reservation:
            if current.state != rules.RESERVED:
                # Released meanwhile (expired): give back what this call held.
                await self._move(current, rules.RELEASED)
            if current.confirm() is Move.APPLY:
                await self.reservations.save(current)
            return current

        return await self._retrying(reservation, attempt)

    async def _require_skus(self, merchant_id: str, skus: list[str]) -> None:
        """NOT_FOUND naming every line whose SKU does not exist."""
        known = {s.sku_id for s in await self.stock.get_many(merchant_id, skus)}
        missing = [FieldViolation(f"lines[{i}].sku_id", "no such SKU") for i, s in enumerate(skus) if s not in known]
        if missing:
            raise NotFound("no such SKU", reason="SKU_NOT_FOUND", violations=missing)

    async def _reserve(self, merchant_id: str, cmd: validation.ReserveStock) -> Reservation:
        # The SKUs are not read first: a line whose SKU does not exist fails its hold like
        # a line out of stock, and only then are they read, to answer NOT_FOUND instead.
        reservation = Reservation.open(cmd.reservation_id, merchant_id, cmd.order_id, cmd.lines, cmd.expires_at,
                                       self.clock())
        # Insert first: on the common path the reservation is what was just written, with no
        # read before or after; a repeat of the same reservation id lands on the duplicate.
        if await self.reservations.add(reservation):
            return await self._hold_all(reservation)
        existing = await self.reservations.get(merchant_id, cmd.reservation_id)
        if existing is None:
            raise AlreadyExists("the reservation id is taken", reason="RESERVATION_ID_TAKEN")
        # A repeated reserve returns the reservation; one that was interrupted is completed.
        if existing.state == rules.RESERVED and not existing.confirmed:
            return await self._hold_all(existing)
        return existing

    async def _reserve_for_caller(self, merchant_id: str, cmd: validation.ReserveStock) -> Reservation:
        # Tests hold a reserve here to give up on the call before it took the stock.
        await delays.pause("catalog.reserve.before")
        return await self._reserve(merchant_id, cmd)

    async def release_abandoned(self, merchant_id: str, reservation_id: str) -> None:
        """The caller of a reserve gave up, so no order will ever use this reservation: release
        what it holds now rather than at its expiry. One never written held nothing (a flash
        sale's pool hold without its reservation is freed by the flash sale job)."""
        reservation = await self.reservations.get(merchant_id, reservation_id)
        if reservation is None or reservation.state == rules.COMMITTED:
            return
        await self._move(reservation, rules.RELEASED)
        log.info("reservation.abandoned", reservation_id=reservation_id)

    async def finish_or_release(self, merchant_id: str, reservation_id: str, reserving: Awaitable[T]) -> T:
        """Awaits a reserve's storage work to its end; if the caller gave up meanwhile, releases
        the reservation at once and lets the cancellation through."""
        try:
            return await shielded(reserving)
        except asyncio.CancelledError:
            try:
                await shielded(self.release_abandoned(merchant_id, reservation_id))
            except Exception:  # noqa: BLE001 - the sweeper releases it at expiry
                log.warning("reservation.abandon_failed", reservation_id=reservation_id, exc_info=True)
            raise

    # ---- the use cases

    async def reserve(self, cmd: validation.ReserveStock) -> Reservation:
        """All lines or none. A caller that gives up meanwhile leaves nothing held: the
        work runs to its end and the reservation is released at once."""
        merchant_id = context.current().require_merchant()
        cmd = validation.reserve(cmd)
        require_time(RESERVE_MIN_TIME_S, "reserve the stock")
        return await self.finish_or_release(merchant_id, cmd.reservation_id, self._reserve_for_caller(merchant_id, cmd))

    async def release(self, reservation_id: str) -> Reservation:
        merchant_id = context.current().require_merchant()
        validation.reservation_id(reservation_id)
        return await self._move(await self._get(merchant_id, reservation_id), rules.RELEASED)

    async def on_order(self, merchant_id: str, reservation_id: str, target: str, event_id: str) -> Reservation:
        """An order event moves its reservation; a replay finds it moved and does nothing."""
        return await self._move(await self._get(merchant_id, reservation_id), target, event_id)

    async def on_paid(self, merchant_id: str, reservation_id: str, event_id: str) -> Reservation:
        """order.paid: commit; on a released reservation hold the units again or report
        them unfulfillable. A replay finds the outcome and does nothing more."""
        return await self._paid(merchant_id, reservation_id, event_id)

    async def get_reservation(self, reservation_id: str) -> Reservation:
        merchant_id = context.current().require_merchant()
        validation.reservation_id(reservation_id)
        return await self._get(merchant_id, reservation_id)

    async def get_stock(self, sku_id: str) -> Stock:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        validation.require_id(sku_id, "sku_id", "sku")
        stock = await self.stock.get(ctx.require_merchant(), sku_id)
        if stock is None:
            raise NotFound("no such SKU")
        return stock

    async def sweep(self, now: datetime | None = None) -> int:
        """Expired reservations go where their order says (the order service decides:
        commit for a paid order, release for a cancelled or never written one, nothing
        while it waits for payment or cannot be asked); then interrupted stock moves are
        finished. Replicas may sweep at once: every move is a compare-and-set."""
        now = now or self.clock()
        due = await self.reservations.expired(now, SWEEP_BATCH, self._sweep_after)
        # The next pass continues after this batch, and starts over once it reached the end.
        self._sweep_after = due[-1].id if len(due) == SWEEP_BATCH else ""
        done = 0
        for reservation in due:
            if reservation.expires_at > now:
                continue  # the embedded server's range compares whole seconds: not due yet
            verdict = await self.orders.verdict(reservation.merchant_id, reservation.order_id, reservation.id)
            if verdict in (COMMIT, RELEASE):
                done += await self._expire(reservation, rules.COMMITTED if verdict == COMMIT else rules.RELEASED)
        for reservation in await self.reservations.unsettled(now - SETTLE_GRACE, SWEEP_BATCH):
            await self._settle(reservation)
            done += 1
        return done

    async def _expire(self, reservation: Reservation, target: str) -> int:
        try:
            await self._move(reservation, target)
            return 1
        except DomainError as error:  # moved meanwhile (an order event came first)
            log.info("sweep.skipped", reservation_id=reservation.id, reason=error.reason)
            return 0
