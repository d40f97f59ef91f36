"""Adjusting, returning and auditing stock and repairing its ledger, on fakes."""
from __future__ import annotations

from datetime import timedelta

import pytest

from siyu_kit.errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied
from siyu_kit.ids import new_id

from services.catalog.application import validation
from services.catalog.application.inventory import REPAIR_GRACE
from services.catalog.domain import stock as rules
from services.catalog.domain.stock import Stock, StockChange
from tests.fakes.catalog import MERCHANT, T0, service, staff

SKU = new_id("sku")


async def stocked(shop, units: int = 5) -> None:
    shop.products.docs["prd_1"] = {"_id": "prd_1", "merchant_id": MERCHANT, "sales": 0}
    await shop.stock.add(Stock(SKU, MERCHANT, "prd_1", units, 0, units))
    await shop.movements.record(MERCHANT, rules.Movement(rules.INITIAL, SKU, units))


async def test_adjust_restocks_writes_off_and_replays(shop):
    await stocked(shop)
    with staff():
        assert (await shop.inventory_cases.adjust_stock(SKU, 10, " restock ", "k1")).levels == rules.Levels(15, 0, 15)
        assert (await shop.inventory_cases.adjust_stock(SKU, 10, "restock", "k1")).levels == rules.Levels(15, 0, 15)
        assert (await shop.inventory_cases.adjust_stock(SKU, -15, "lost", "k2")).available == 0
        with pytest.raises(FailedPrecondition) as short:
            await shop.inventory_cases.adjust_stock(SKU, -1, "lost", "k3")
        assert short.value.reason == "OUT_OF_STOCK"
        with pytest.raises(AlreadyExists) as reused:
            await shop.inventory_cases.adjust_stock(SKU, 5, "restock", "k1")
        assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"
        with pytest.raises(NotFound):
            await shop.inventory_cases.adjust_stock(new_id("sku"), 1, "restock", "k4")
    assert shop.movements.kinds(SKU) == ["ADJUST", "ADJUST", "INITIAL"]
    assert shop.movements.movements[rules.movement_id(rules.ADJUST, SKU, "k1")]["reason"] == "restock"


async def test_adjusting_is_for_operators():
    from tests.fakes.catalog import catalog
    shop = catalog()
    await stocked(shop)
    with staff(MERCHANT, "FINANCE"), pytest.raises(PermissionDenied):
        await shop.inventory_cases.adjust_stock(SKU, 1, "restock", "k1")


async def test_return_puts_units_back_once_and_counts_them_out_of_sales(shop):
    await stocked(shop)
    cmd = validation.ReturnStock("ret-1", "ord_1", [(SKU, 2)])
    with service():
        (after,) = await shop.inventory_cases.return_stock(cmd)
        (again,) = await shop.inventory_cases.return_stock(cmd)
        with pytest.raises(NotFound) as missing:
            await shop.inventory_cases.return_stock(validation.ReturnStock("ret-2", "ord_1", [(new_id("sku"), 1)]))
    assert after.levels == again.levels == rules.Levels(7, 0, 7)
    assert shop.products.docs["prd_1"]["sales"] == -2
    assert missing.value.reason == "SKU_NOT_FOUND"


async def test_the_audit_adds_up_the_ledger(shop):
    await stocked(shop)
    with staff():
        await shop.inventory_cases.adjust_stock(SKU, 3, "restock", "k1")
        audit = await shop.inventory_cases.audit_stock(SKU)
    assert audit.consistent and audit.recomputed == rules.Levels(8, 0, 8) and len(audit.movements) == 2
    # A stock write whose movement is not stored yet still owes it: the audit counts it ...
    assert await shop.stock.apply(MERCHANT, StockChange.adjust(SKU, "lost", 4, "restock"))
    with staff():
        owing = await shop.inventory_cases.audit_stock(SKU)
    assert owing.consistent and owing.recomputed == rules.Levels(12, 0, 12)
    # ... the repair stores it, once the write can no longer be in progress.
    assert await shop.inventory_cases.repair_ledger(T0) == 0
    assert await shop.inventory_cases.repair_ledger(T0 + REPAIR_GRACE + timedelta(seconds=1)) == 1
    assert await shop.inventory_cases.repair_ledger(T0 + REPAIR_GRACE + timedelta(seconds=1)) == 0
    with staff():
        repaired = await shop.inventory_cases.audit_stock(SKU)
    assert repaired.consistent and repaired.recomputed == rules.Levels(12, 0, 12)
    # Units that moved with neither a stored nor an owed movement leave it inconsistent.
    shop.stock.records[SKU].on_hand += 1
    shop.stock.records[SKU].available += 1
    with staff():
        assert not (await shop.inventory_cases.audit_stock(SKU)).consistent


async def test_the_ledger_writer_stores_the_holds_reserving_left_owed_and_nothing_else(shop):
    await stocked(shop)
    with service():
        await shop.stock_cases.reserve(validation.ReserveStock("rsv-w", "ord_1", [(SKU, 2)], T0 + timedelta(minutes=15)))
    assert await shop.stock.apply(MERCHANT, StockChange.adjust(SKU, "k2", 1, "restock"))
    with staff():
        owing = await shop.inventory_cases.audit_stock(SKU)
    assert owing.consistent and owing.recomputed == rules.Levels(6, 2, 4)
    assert rules.RESERVE not in shop.movements.kinds(SKU)
    assert await shop.inventory_cases.store_owed_holds() == 1
    assert await shop.inventory_cases.store_owed_holds() == 0  # stored once
    assert rules.RESERVE in shop.movements.kinds(SKU)
    # The adjustment's movement is left to its own write, then the repair.
    assert [m.kind for m, _ in (await shop.stock.get(MERCHANT, SKU)).owed] == [rules.ADJUST]
    with staff():
        audit = await shop.inventory_cases.audit_stock(SKU)
    assert audit.consistent and audit.recomputed == rules.Levels(6, 2, 4)
