"""Staff and order-service stock changes outside reservations: adjustments, returns, the
audit of a SKU against its ledger, and the repair of ledger entries a crash left owing.

Each change is one conditional atomic update that also marks itself done (by idempotency
key or return id) and records the movement it owes the ledger; the movement is stored
next, and `repair_ledger` stores any that a crash left behind.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from siyu_kit import context, logging as slog
from siyu_kit.errors import AlreadyExists, FailedPrecondition, FieldViolation, NotFound
from siyu_kit.protos import epoch_ms, utcnow

from services.catalog.application import validation
from services.catalog.application.ledger import Ledger
from services.catalog.application.ports import LedgerRepository, StockRepository
from services.catalog.domain import stock as rules
from services.catalog.domain.stock import Stock, StockChange

log = slog.get("siyu.catalog.inventory")

# The audit shows at most this many movements (the newest); it always adds up all of them.
AUDIT_MOVEMENTS = 500
REPAIR_BATCH = 100
# A movement owed this long was interrupted (a live write stores it within milliseconds).
REPAIR_GRACE = timedelta(seconds=30)


@dataclass(frozen=True)
class Audit:
    stock: Stock
    recomputed: rules.Levels
    consistent: bool
    movements: list[dict]  # the newest AUDIT_MOVEMENTS, oldest first


class InventoryUseCases:
    def __init__(self, stock: StockRepository, movements: LedgerRepository, ledger: Ledger,
                 clock: Callable[[], datetime] = utcnow):
        self.stock = stock
        self.movements = movements
        self.ledger = ledger
        self.clock = clock

    async def _adjust(self, merchant_id: str, sku_id: str, delta: int, reason: str, key: str) -> Stock:
        change = StockChange.adjust(sku_id, key, delta, reason)
        after = await self.stock.apply_and_read(merchant_id, change)
        if after is not None:
            await self.ledger.record(merchant_id, change.movement, after.product_id)
            return after
        current = await self.stock.get(merchant_id, sku_id)
        if current is None:
            raise NotFound("no such SKU")
        done = current.adjustment(key)
        if done is None:
            raise FailedPrecondition(f"only {current.available} units are available to write off",
                                     reason="OUT_OF_STOCK")
        if done != delta:
            raise AlreadyExists("the idempotency key was used for another adjustment", reason="IDEMPOTENCY_KEY_REUSED")
        # A replay: the stock moved once already; make sure its movement is stored.
        await self.ledger.record(merchant_id, change.movement, current.product_id)
        return current

    async def adjust_stock(self, sku_id: str, delta: int, reason: str, idempotency_key: str) -> Stock:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        trimmed = validation.adjust(sku_id, delta, reason, idempotency_key)
        return await self._adjust(ctx.require_merchant(), sku_id, delta, trimmed, idempotency_key)

    async def audit_stock(self, sku_id: str) -> Audit:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "FINANCE")
        validation.require_id(sku_id, "sku_id", "sku")
        merchant_id = ctx.require_merchant()
        stock = await self.stock.get(merchant_id, sku_id)
        if stock is None:
            raise NotFound("no such SKU")
        stored = await self.movements.movements_of(merchant_id, sku_id)
        # Movements the stock owes and the ledger writer has not stored yet count too, as
        # they will be stored.
        ids = {m["_id"] for m in stored}
        movements = sorted([*stored, *(_owed_doc(m, at_ms) for m, at_ms in stock.owed if m.id not in ids)],
                           key=lambda m: _aware(m["at"]))
        levels = rules.recompute(rules.Deltas(int(m["on_hand_delta"]), int(m["reserved_delta"]),
                                              int(m["available_delta"])) for m in movements)
        actual = stock.levels
        return Audit(stock, levels, levels == actual and actual.consistent(), movements[-AUDIT_MOVEMENTS:])

    async def return_stock(self, cmd: validation.ReturnStock) -> list[Stock]:
        merchant_id = context.current().require_merchant()
        cmd = validation.return_stock(cmd)
        skus = [sku_id for sku_id, _ in cmd.lines]
        known = {s.sku_id for s in await self.stock.get_many(merchant_id, skus)}
        missing = [FieldViolation(f"lines[{i}].sku_id", "no such SKU") for i, s in enumerate(skus) if s not in known]
        if missing:
            raise NotFound("no such SKU", reason="SKU_NOT_FOUND", violations=missing)
        levels = []
        for sku_id, quantity in cmd.lines:
            change = StockChange.give_back(sku_id, cmd.return_id, quantity, f"order {cmd.order_id}")
            after = await self.stock.apply_and_read(merchant_id, change)
            if after is None:  # returned by an earlier call: make sure its movement is stored
                after = await self.stock.get(merchant_id, sku_id)
            await self.ledger.record(merchant_id, change.movement, after.product_id)
            levels.append(after)
        return levels

    async def repair_ledger(self, now: datetime | None = None) -> int:
        """Store the movements that stock writes owe the ledger and a crash left behind."""
        cutoff = epoch_ms((now or self.clock()) - REPAIR_GRACE)
        repaired = 0
        for stock in await self.stock.owing(REPAIR_BATCH):
            for movement, at_ms in stock.owed:
                if at_ms > cutoff:
                    continue  # still being written
                await self.ledger.record(stock.merchant_id, movement, stock.product_id, at_ms)
                log.info("ledger.repaired", sku_id=stock.sku_id, kind=movement.kind, reference=movement.reference)
                repaired += 1
        return repaired

    async def store_owed_holds(self) -> int:
        """The ledger writer job: store the RESERVE movements reserving leaves owed (it does
        not store them itself, to keep the order's path short). Storing one is idempotent
        (its id is fixed), so replicas doing it at once store it once."""
        stored = 0
        for stock in await self.stock.owing(REPAIR_BATCH):
            for movement, at_ms in stock.owed:
                if movement.kind == rules.RESERVE:
                    await self.ledger.record(stock.merchant_id, movement, stock.product_id, at_ms)
                    stored += 1
        return stored


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)


def _owed_doc(movement: rules.Movement, at_ms: int) -> dict:
    """An owed movement as the ledger will store it."""
    d = movement.deltas
    return {"_id": movement.id, "kind": movement.kind, "reference": movement.reference, "reason": movement.reason,
            "on_hand_delta": d.on_hand, "reserved_delta": d.reserved, "available_delta": d.available,
            "at": datetime.fromtimestamp(at_ms / 1000, timezone.utc)}
