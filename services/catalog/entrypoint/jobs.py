"""Scheduled jobs: the sweeper that releases expired reservations."""
from __future__ import annotations

import os

from siyu_kit.service import Job

from services.catalog.application.stock import StockUseCases


def sweep_interval_s() -> float:
    raw = os.environ.get("SIYU_CATALOG_SWEEP_INTERVAL_S", "5")
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"SIYU_CATALOG_SWEEP_INTERVAL_S must be a number, got {raw!r}") from exc
    if value <= 0:
        raise ValueError("SIYU_CATALOG_SWEEP_INTERVAL_S must be positive")
    return value


def jobs(stock: StockUseCases) -> list[Job]:
    return [Job("catalog-reservation-sweeper", sweep_interval_s(), stock.sweep)]
