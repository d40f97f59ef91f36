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
from typing import Awaitable, Callable, Protocol, TypeVar

from siyu_kit import context, delays, logging as slog
from siyu_kit.cancellation import require_time, shielded
from siyu_kit.db import run_sync
from siyu_kit.errors import AlreadyExists, DomainError, FailedPrecondition, FieldViolation, NotFound
from siyu_kit.events.outbox import make_event
from siyu_kit.protos import aware, epoch_ms, timestamp, utcnow
from siyu.catalog.v1 import catalog_pb2, events_pb2

from services.catalog.adapters import repositories as repo
from services.catalog.adapters.orders import COMMIT, RELEASE
from services.catalog.application import flash_sales, validation
from services.catalog.application.inventory import record_movement
from services.catalog.domain import stock as rules

log = slog.get("siyu.catalog.stock")
T = TypeVar("T")

STATE_NUMBERS = {rules.RESERVED: catalog_pb2.RESERVATION_STATE_RESERVED,
                 rules.COMMITTED: catalog_pb2.RESERVATION_STATE_COMMITTED,
                 rules.RELEASED: catalog_pb2.RESERVATION_STATE_RELEASED}
VERBS = {rules.RESERVED: "reserved", rules.COMMITTED: "committed", rules.RELEASED: "released"}
UNFULFILLABLE = "unfulfillable"
SWEEP_BATCH = 100
# A state claimed this long ago whose stock has not moved was interrupted.
SETTLE_GRACE = timedelta(seconds=30)
# A reserve with less than this left of its caller's deadline is refused before it starts:
# the few round trips it takes would not finish in time.
RESERVE_MIN_TIME_S = 0.1


def reservation_message(doc: dict, state: str | None = None) -> catalog_pb2.Reservation:
    return catalog_pb2.Reservation(
        reservation_id=doc["_id"], order_id=doc["order_id"], state=STATE_NUMBERS[state or doc["state"]],
        lines=[catalog_pb2.ReservationLine(sku_id=l["sku_id"], quantity=int(l["quantity"])) for l in doc["lines"]],
        expires_at=timestamp(aware(doc["expires_at"])), flash_sale_id=doc.get("flash_sale_id", ""))


def _event(doc: dict, state: str, verb: str = ""):
    return make_event(f"siyu.catalog.reservation.{verb or VERBS[state]}", merchant_id=doc["merchant_id"],
                      aggregate_id=doc["_id"], aggregate_version=int(doc["version"]) + 1,
                      payload=events_pb2.ReservationChanged(reservation=reservation_message(doc, state)))


def _reload(doc: dict) -> dict:
    fresh = repo.reservation_get(doc["merchant_id"], doc["_id"])
    if fresh is None:
        raise NotFound("no such reservation")
    return fresh


def hold_key(doc: dict) -> str:
    """The key the reservation's units are held under: its id, or its late key once a
    payment that came after the release held them again."""
    return doc.get("hold_key") or doc["_id"]


def _settle(doc: dict) -> None:
    """Move the stock of a COMMITTED or RELEASED reservation; each line at most once."""
    merchant_id, rid, key = doc["merchant_id"], doc["_id"], hold_key(doc)
    if doc.get("flash_sale_id"):
        # The units are in the flash sale's pool: the pool moves and the stock follows it.
        flash_sales.settle(doc)
        repo.reservation_mark_settled(merchant_id, rid)
        return
    for line in doc["lines"]:
        sku_id, quantity = line["sku_id"], int(line["quantity"])
        if doc["state"] == rules.COMMITTED:
            sold = repo.stock_consume(merchant_id, sku_id, key, quantity)
            if sold is not None:
                record_movement(merchant_id, sku_id, sold["product_id"], rules.COMMIT, quantity, key)
        elif repo.stock_unhold(merchant_id, sku_id, key, quantity):
            repo.movement_record(merchant_id, sku_id, rules.RELEASE, quantity, key)
    repo.reservation_mark_settled(merchant_id, rid)


def _transition(doc: dict, target: str, event_id: str = "") -> dict:
    """RESERVED → target, compare-and-set; an already reached target is a no-op."""
    for _ in range(10):
        if doc["state"] == target:
            if not doc.get("settled", 1):
                _settle(doc)
                doc = _reload(doc)
            return doc
        if not rules.can_transition(doc["state"], target):
            raise FailedPrecondition(f"the reservation is {doc['state']}", reason=f"RESERVATION_{doc['state']}")
        if target == rules.COMMITTED and not doc.get("confirmed"):
            raise FailedPrecondition("the reservation does not hold every line", reason="RESERVATION_INCOMPLETE")
        if repo.reservation_update(doc["merchant_id"], doc["_id"], version=int(doc["version"]),
                                   expect={"state": doc["state"]},
                                   sets={"state": target, "settled": 0, "last_event_id": event_id},
                                   event=_event(doc, target)):
            # The compare-and-set succeeded, so the document is known without reading it.
            doc = {**doc, "state": target, "settled": 0, "last_event_id": event_id,
                   "version": int(doc["version"]) + 1}
            _settle(doc)
            return {**doc, "settled": 1}
        doc = _reload(doc)
    raise FailedPrecondition("the reservation keeps changing; try again", reason="RESERVATION_BUSY")


def _hold_again(doc: dict, key: str) -> bool:
    """Hold every line again under `key`; False as soon as one cannot be held (what was
    held is given back by settling the reservation)."""
    if doc.get("flash_sale_id"):
        return flash_sales.hold_again(doc, key)
    merchant_id = doc["merchant_id"]
    for line in doc["lines"]:
        sku_id, quantity = line["sku_id"], int(line["quantity"])
        if repo.stock_hold(merchant_id, sku_id, key, quantity):
            repo.movement_record(merchant_id, sku_id, rules.RESERVE, quantity, key)
        elif not repo.stock_has_hold(merchant_id, sku_id, key):
            return False
    return True


def _paid_after_release(doc: dict, event_id: str) -> dict:
    """A payment reached a RELEASED reservation (its order was written after the sweeper
    released it, or an older release): sell the units if they can be held again, every
    line or none; otherwise mark it unfulfillable, with the event the order service
    refunds on, in one write. Repeats find the outcome and finish its stock move."""
    key = rules.late_hold_key(doc["_id"])
    for _ in range(10):
        if doc["state"] == rules.COMMITTED:
            if not doc.get("settled", 1):
                _settle(doc)
            return _reload(doc)
        if doc.get("unfulfillable"):
            # Also gives back a line a concurrent attempt may have held after the first settle.
            _settle(doc)
            return doc
        if not doc.get("settled", 1):
            # Finish the release first: its unhold must not race the new holds.
            _settle(doc)
            doc = _reload(doc)
            continue
        if _hold_again(doc, key):
            sets = {"state": rules.COMMITTED, "settled": 0, "hold_key": key, "last_event_id": event_id}
            event = _event(doc, rules.COMMITTED)
        else:
            sets = {"unfulfillable": 1, "settled": 0, "hold_key": key, "last_event_id": event_id}
            event = _event(doc, rules.RELEASED, UNFULFILLABLE)
        if repo.reservation_update(doc["merchant_id"], doc["_id"], version=int(doc["version"]),
                                   expect={"state": rules.RELEASED}, sets=sets, event=event):
            doc = {**doc, **sets, "version": int(doc["version"]) + 1}
            _settle(doc)
            if sets.get("unfulfillable"):
                log.warning("reservation.unfulfillable", reservation_id=doc["_id"], order_id=doc["order_id"])
            return {**doc, "settled": 1}
        doc = _reload(doc)
    raise FailedPrecondition("the reservation keeps changing; try again", reason="RESERVATION_BUSY")


def _paid(merchant_id: str, reservation_id: str, event_id: str) -> dict:
    doc = repo.reservation_get(merchant_id, reservation_id)
    if doc is None:
        raise NotFound("no such reservation")
    if doc["state"] != rules.RELEASED:
        try:
            return _transition(doc, rules.COMMITTED, event_id)
        except FailedPrecondition as error:
            if error.reason != "RESERVATION_RELEASED":
                raise
            doc = _reload(doc)  # released meanwhile
    return _paid_after_release(doc, event_id)


def _hold_all(doc: dict) -> dict:
    merchant_id, rid = doc["merchant_id"], doc["_id"]
    for i, line in enumerate(doc["lines"]):
        sku_id, quantity = line["sku_id"], int(line["quantity"])
        if repo.stock_hold(merchant_id, sku_id, rid, quantity):
            repo.movement_record(merchant_id, sku_id, rules.RESERVE, quantity, rid)
        elif not repo.stock_has_hold(merchant_id, sku_id, rid):
            _transition(_reload(doc), rules.RELEASED)
            raise FailedPrecondition(f"not enough stock for sku {sku_id}", reason="OUT_OF_STOCK",
                                     violations=[FieldViolation(f"lines[{i}].quantity", "not enough stock")])
    for _ in range(10):
        if doc["state"] != rules.RESERVED:
            # Released meanwhile (expired): give back what this call held.
            _transition(doc, rules.RELEASED)
            raise FailedPrecondition("the reservation was released", reason="RESERVATION_RELEASED")
        if doc.get("confirmed"):
            return doc
        if repo.reservation_update(merchant_id, rid, version=int(doc["version"]),
                                   expect={"state": rules.RESERVED, "confirmed": 0}, sets={"confirmed": 1},
                                   event=_event(doc, rules.RESERVED)):
            return {**doc, "confirmed": 1, "version": int(doc["version"]) + 1}
        doc = _reload(doc)
    raise FailedPrecondition("the reservation keeps changing; try again", reason="RESERVATION_BUSY")


def _reserve(merchant_id: str, cmd: validation.ReserveStock) -> dict:
    skus = [sku_id for sku_id, _ in cmd.lines]
    known = {s["_id"] for s in repo.stock_get_many(merchant_id, skus)}
    missing = [FieldViolation(f"lines[{i}].sku_id", "no such SKU") for i, s in enumerate(skus) if s not in known]
    if missing:
        raise NotFound("no such SKU", reason="SKU_NOT_FOUND", violations=missing)
    now = utcnow()
    fields = {"merchant_id": merchant_id, "order_id": cmd.order_id, "state": rules.RESERVED,
              "lines": [{"sku_id": s, "quantity": q} for s, q in cmd.lines], "expires_at": cmd.expires_at,
              "confirmed": 0, "settled": 1, "created_at": now, "updated_ms": epoch_ms(now), "version": 1}
    # Insert first: on the common path the document is what was just written, with no
    # read before or after; a repeat of the same reservation id lands on the duplicate.
    if repo.reservation_insert({"id": cmd.reservation_id, **fields}):
        return _hold_all({"_id": cmd.reservation_id, **fields})
    doc = repo.reservation_get(merchant_id, cmd.reservation_id)
    if doc is None:
        raise AlreadyExists("the reservation id is taken", reason="RESERVATION_ID_TAKEN")
    return _resume(doc)


def _resume(doc: dict) -> dict:
    """A repeated reserve returns the reservation; one that was interrupted is completed."""
    if doc["state"] == rules.RESERVED and not doc.get("confirmed"):
        return _hold_all(doc)
    return doc


def _reserve_for_caller(merchant_id: str, cmd: validation.ReserveStock) -> dict:
    # Tests hold a reserve here to give up on the call before it took the stock.
    delays.stall("catalog.reserve.before")
    return _reserve(merchant_id, cmd)


def release_abandoned(merchant_id: str, reservation_id: str) -> None:
    """The caller of a reserve gave up, so no order will ever use this reservation: release
    what it holds now rather than at its expiry. One never written held nothing (a flash
    sale's pool hold without its reservation is freed by the flash sale job)."""
    doc = repo.reservation_get(merchant_id, reservation_id)
    if doc is None or doc["state"] == rules.COMMITTED:
        return
    _transition(doc, rules.RELEASED)
    log.info("reservation.abandoned", reservation_id=reservation_id)


async def finish_or_release(merchant_id: str, reservation_id: str, reserving: Awaitable[T],
                            events_committed: Callable[[], None]) -> T:
    """Awaits a reserve's storage work to its end; if the caller gave up meanwhile, releases
    the reservation at once and lets the cancellation through."""
    try:
        return await shielded(reserving)
    except asyncio.CancelledError:
        try:
            await shielded(run_sync(release_abandoned, merchant_id, reservation_id))
        except Exception:  # noqa: BLE001 - the sweeper releases it at expiry
            log.warning("reservation.abandon_failed", reservation_id=reservation_id, exc_info=True)
        finally:
            events_committed()
        raise


class OrderVerdicts(Protocol):
    async def verdict(self, merchant_id: str, order_id: str, reservation_id: str) -> str | None: ...


class StockUseCases:
    def __init__(self, events_committed: Callable[[], None], orders: OrderVerdicts):
        # Wakes the outbox relay; called on the event loop after writes that add events.
        self.events_committed = events_committed
        # Says what may become of an order's expired reservation (the sweeper).
        self.orders = orders
        self._sweep_after = ""

    async def _write(self, fn, *args):
        try:
            return await run_sync(fn, *args)
        finally:
            self.events_committed()

    async def reserve(self, cmd: validation.ReserveStock) -> dict:
        """All lines or none. A caller that gives up meanwhile leaves nothing held: the
        work runs to its end and the reservation is released at once."""
        merchant_id = context.current().require_merchant()
        cmd = validation.reserve(cmd)
        require_time(RESERVE_MIN_TIME_S, "reserve the stock")
        return await finish_or_release(merchant_id, cmd.reservation_id,
                                       self._write(_reserve_for_caller, merchant_id, cmd), self.events_committed)

    async def release(self, reservation_id: str) -> dict:
        merchant_id = context.current().require_merchant()
        validation.reservation_id(reservation_id)
        return await self._write(self._change, merchant_id, reservation_id, rules.RELEASED, "")

    async def on_order(self, merchant_id: str, reservation_id: str, target: str, event_id: str) -> dict:
        """An order event moves its reservation; a replay finds it moved and does nothing."""
        return await self._write(self._change, merchant_id, reservation_id, target, event_id)

    async def on_paid(self, merchant_id: str, reservation_id: str, event_id: str) -> dict:
        """order.paid: commit; on a released reservation hold the units again or report
        them unfulfillable. A replay finds the outcome and does nothing more."""
        return await self._write(_paid, merchant_id, reservation_id, event_id)

    @staticmethod
    def _change(merchant_id: str, reservation_id: str, target: str, event_id: str) -> dict:
        doc = repo.reservation_get(merchant_id, reservation_id)
        if doc is None:
            raise NotFound("no such reservation")
        return _transition(doc, target, event_id)

    async def get_reservation(self, reservation_id: str) -> dict:
        merchant_id = context.current().require_merchant()
        validation.reservation_id(reservation_id)
        doc = await run_sync(repo.reservation_get, merchant_id, reservation_id)
        if doc is None:
            raise NotFound("no such reservation")
        return doc

    async def get_stock(self, sku_id: str) -> dict:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        validation.require_id(sku_id, "sku_id", "sku")
        doc = await run_sync(repo.stock_get, ctx.require_merchant(), sku_id)
        if doc is None:
            raise NotFound("no such SKU")
        return doc

    async def sweep(self, now: datetime | None = None) -> int:
        """Expired reservations go where their order says (the order service decides:
        commit for a paid order, release for a cancelled or never written one, nothing
        while it waits for payment or cannot be asked); then interrupted stock moves are
        finished. Replicas may sweep at once: every move is a compare-and-set."""
        now = now or utcnow()
        due = await run_sync(repo.reservations_expired, now, SWEEP_BATCH, self._sweep_after)
        # The next pass continues after this batch, and starts over once it reached the end.
        self._sweep_after = due[-1]["_id"] if len(due) == SWEEP_BATCH else ""
        done = 0
        for doc in due:
            if aware(doc["expires_at"]) > now:
                continue  # the embedded server's range compares whole seconds: not due yet
            verdict = await self.orders.verdict(doc["merchant_id"], doc["order_id"], doc["_id"])
            if verdict in (COMMIT, RELEASE):
                done += await self._write(_expire, doc, rules.COMMITTED if verdict == COMMIT else rules.RELEASED)
        return done + await self._write(_finish_interrupted, now)


def _expire(doc: dict, target: str) -> int:
    try:
        _transition(doc, target)
        return 1
    except DomainError as error:  # moved meanwhile (an order event came first)
        log.info("sweep.skipped", reservation_id=doc["_id"], reason=error.reason)
        return 0


def _finish_interrupted(now: datetime) -> int:
    done = 0
    for doc in repo.reservations_unsettled(now - SETTLE_GRACE, SWEEP_BATCH):
        _settle(doc)
        done += 1
    return done
