"""What the use cases need from outside the service."""
from __future__ import annotations

from datetime import datetime
from typing import Protocol

from services.order.adapters.catalog import SkuInfo


class Catalog(Protocol):
    async def skus(self, sku_ids: list[str]) -> dict[str, SkuInfo]: ...

    async def reserve(self, reservation_id: str, order_id: str, lines: list[tuple[str, int]],
                      expires_at: datetime) -> None: ...

    async def release(self, reservation_id: str) -> None: ...


class Attributions(Protocol):
    async def check_attribution(self, persona_id: str, content_id: str) -> None: ...
