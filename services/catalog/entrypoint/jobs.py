"""Scheduled jobs: the sweeper that releases expired reservations."""
from __future__ import annotations

from siyu_kit.config import env_seconds
from siyu_kit.service import Job

from services.catalog.application.stock import StockUseCases


def sweep_interval_s() -> float:
    return env_seconds("CATALOG_SWEEP_INTERVAL_S", 5)


def jobs(stock: StockUseCases) -> list[Job]:
    return [Job("catalog-reservation-sweeper", sweep_interval_s(), stock.sweep)]
