"""Scheduled jobs: the sweeper that releases expired reservations, the ledger repair
that stores stock movements a crash left owing, the ledger writer that stores the
movements of holds, and the flash-sale job that gives unsold
pool units back after a sale and finishes what a crash interrupted."""
from __future__ import annotations

from siyu_kit.config import env_seconds
from siyu_kit.service import Job

from services.catalog.adapters.live_room_store import MongoRoomSales
from services.catalog.application.flash_sales import FlashSaleUseCases
from services.catalog.application.live_room import RoomAnnouncements
from services.catalog.application.inventory import InventoryUseCases
from services.catalog.application.stock import StockUseCases


LEDGER_WRITER_INTERVAL_S = 1.0


def sweep_interval_s() -> float:
    return env_seconds("CATALOG_SWEEP_INTERVAL_S", 5)


def jobs(stock: StockUseCases, inventory: InventoryUseCases, flash: FlashSaleUseCases) -> list[Job]:
    return [Job("catalog-reservation-sweeper", sweep_interval_s(), stock.sweep),
            Job("catalog-ledger-repair", sweep_interval_s(), inventory.repair_ledger),
            Job("catalog-flash-sales", sweep_interval_s(), flash.tend),
            # Stores the holds' movements that reserving leaves owed: a SKU's owed entries
            # stay few, and an audit counts them meanwhile.
            Job("catalog-ledger-writer", LEDGER_WRITER_INTERVAL_S, inventory.store_owed_holds)]


def live_room_job() -> Job:
    """Tells live rooms of the flash sales bound to their sessions (started, units left)."""
    return Job("catalog-live-room", env_seconds("CATALOG_LIVE_ROOM_INTERVAL_S", 1),
               RoomAnnouncements(MongoRoomSales()).announce)
