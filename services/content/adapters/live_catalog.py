"""The catalog as live sessions see it: the line-up's SKUs with their list prices, and the
flash sales bound to a session. Calls carry the caller's identity (the channel's
interceptor), so the catalog answers for the caller's merchant."""
from __future__ import annotations

import grpc
from siyu.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from siyu_kit import errors

from services.content.domain.live_sessions import SkuPrice

TIMEOUT_S = 5.0
FLASH_SALES_READ = 100


class LiveCatalog:
    def __init__(self, channel: grpc.aio.Channel):
        self._stub = catalog_pb2_grpc.CatalogServiceStub(channel)

    async def sku_prices(self, sku_ids: list[str]) -> dict[str, SkuPrice]:
        try:
            resp = await self._stub.GetSkus(catalog_pb2.GetSkusRequest(sku_ids=sku_ids), timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            raise errors.Unavailable("the line-up could not be checked; try again",
                                     reason="CATALOG_UNAVAILABLE") from error
        return {d.sku.sku_id: SkuPrice(sku_id=d.sku.sku_id, product_id=d.sku.product_id,
                                       list_price=d.sku.list_price.amount,
                                       currency=d.sku.list_price.currency or "CNY") for d in resp.skus}

    async def flash_sales(self, session_id: str) -> list[catalog_pb2.FlashSale]:
        try:
            resp = await self._stub.ListFlashSales(
                catalog_pb2.ListFlashSalesRequest(live_session_id=session_id, page_size=FLASH_SALES_READ),
                timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            raise errors.Unavailable("the room's flash sales could not be read; try again",
                                     reason="CATALOG_UNAVAILABLE") from error
        return list(resp.flash_sales)
