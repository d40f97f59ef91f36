"""Staff and order-service stock changes outside reservations: adjustments, returns, the
audit of a SKU against its ledger, and the repair of ledger entries a crash left owing.

Each change is one conditional atomic update that also marks itself done (by idempotency
key or return id) and records the movement it owes the ledger; the movement is stored
next, and `repair_ledger` stores any that a crash left behind.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from siyu_kit import context, logging as slog
from siyu_kit.db import run_sync
from siyu_kit.errors import AlreadyExists, FailedPrecondition, FieldViolation, NotFound
from siyu_kit.protos import epoch_ms, utcnow

from services.catalog.adapters import repositories as repo
from services.catalog.application import validation
from services.catalog.domain import stock as rules

log = slog.get("siyu.catalog.inventory")

# The audit shows at most this many movements (the newest); it always adds up all of them.
AUDIT_MOVEMENTS = 500
REPAIR_BATCH = 100
# A movement owed this long was interrupted (a live write stores it within milliseconds).
REPAIR_GRACE = timedelta(seconds=30)


def record_movement(merchant_id: str, sku_id: str, product_id: str, kind: str, quantity: int, reference: str = "",
            reason: str = "", at_ms: int | None = None) -> None:
    """Store a movement; the first time it is stored, count what it sold or returned."""
    fresh = repo.movement_record(merchant_id, sku_id, kind, quantity, reference, reason, at_ms)
    sold = rules.sales_delta(kind, quantity)
    if fresh and sold:
        repo.product_add_sales(merchant_id, product_id, sold)


def _adjust(merchant_id: str, sku_id: str, delta: int, reason: str, key: str) -> dict:
    after = repo.stock_adjust(merchant_id, sku_id, key, delta, reason)
    if after is not None:
        record_movement(merchant_id, sku_id, after["product_id"], rules.ADJUST, delta, key, reason)
        return after
    current = repo.stock_get(merchant_id, sku_id)
    if current is None:
        raise NotFound("no such SKU")
    done = (current.get("adjustments") or {}).get(key)
    if done is None:
        raise FailedPrecondition(f"only {current['available']} units are available to write off",
                                 reason="INSUFFICIENT_AVAILABLE")
    if int(done) != delta:
        raise AlreadyExists("the idempotency key was used for another adjustment", reason="IDEMPOTENCY_KEY_REUSED")
    # A replay: the stock moved once already; make sure its movement is stored.
    record_movement(merchant_id, sku_id, current["product_id"], rules.ADJUST, delta, key, reason)
    return current


async def adjust_stock(sku_id: str, delta: int, reason: str, idempotency_key: str) -> dict:
    ctx = context.current()
    ctx.require_staff("OPERATOR")
    trimmed = validation.adjust(sku_id, delta, reason, idempotency_key)
    return await run_sync(_adjust, ctx.require_merchant(), sku_id, delta, trimmed, idempotency_key)


@dataclass(frozen=True)
class Audit:
    stock: dict
    recomputed: rules.Levels
    consistent: bool
    movements: list[dict]  # the newest AUDIT_MOVEMENTS, oldest first


def _audit(merchant_id: str, sku_id: str) -> Audit:
    stock = repo.stock_get(merchant_id, sku_id)
    if stock is None:
        raise NotFound("no such SKU")
    movements = repo.movements_of(merchant_id, sku_id)
    levels = rules.recompute(rules.Deltas(int(m["on_hand_delta"]), int(m["reserved_delta"]), int(m["available_delta"]))
                             for m in movements)
    actual = rules.Levels(int(stock["on_hand"]), int(stock["reserved"]), int(stock["available"]))
    return Audit(stock, levels, levels == actual and actual.consistent(), movements[-AUDIT_MOVEMENTS:])


async def audit_stock(sku_id: str) -> Audit:
    ctx = context.current()
    ctx.require_staff("OPERATOR", "FINANCE")
    validation.require_id(sku_id, "sku_id", "sku")
    return await run_sync(_audit, ctx.require_merchant(), sku_id)


def _return(merchant_id: str, cmd: validation.ReturnStock) -> list[dict]:
    skus = [sku_id for sku_id, _ in cmd.lines]
    known = {s["_id"]: s for s in repo.stock_get_many(merchant_id, skus)}
    missing = [FieldViolation(f"lines[{i}].sku_id", "no such SKU") for i, s in enumerate(skus) if s not in known]
    if missing:
        raise NotFound("no such SKU", reason="SKU_NOT_FOUND", violations=missing)
    levels = []
    for sku_id, quantity in cmd.lines:
        after = repo.stock_return(merchant_id, sku_id, cmd.return_id, quantity)
        if after is None:  # returned by an earlier call: make sure its movement is stored
            after = repo.stock_get(merchant_id, sku_id)
        record_movement(merchant_id, sku_id, after["product_id"], rules.RETURN, quantity, cmd.return_id,
                f"order {cmd.order_id}")
        levels.append(after)
    return levels


async def return_stock(cmd: validation.ReturnStock) -> list[dict]:
    merchant_id = context.current().require_merchant()
    return await run_sync(_return, merchant_id, validation.return_stock(cmd))


def _repair(now: datetime) -> int:
    cutoff = epoch_ms(now - REPAIR_GRACE)
    repaired = 0
    for stock in repo.stock_owing(REPAIR_BATCH):
        for entry in (stock.get("pending") or {}).values():
            if int(entry["at_ms"]) > cutoff:
                continue  # still being written
            record_movement(stock["merchant_id"], stock["_id"], stock["product_id"], entry["kind"], int(entry["quantity"]),
                    entry.get("reference", ""), entry.get("reason", ""), int(entry["at_ms"]))
            log.info("ledger.repaired", sku_id=stock["_id"], kind=entry["kind"], reference=entry.get("reference"))
            repaired += 1
    return repaired


async def repair_ledger(now: datetime | None = None) -> int:
    """Store the movements that stock writes owe the ledger and a crash left behind."""
    return await run_sync(_repair, now or utcnow())
