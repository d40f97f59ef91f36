"""The catalog's products, seen from the content service."""
from __future__ import annotations

import asyncio

import grpc
from siyu.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from siyu_kit import errors

TIMEOUT_S = 5.0


class CatalogClient:
    def __init__(self, channel: grpc.aio.Channel):
        self._stub = catalog_pb2_grpc.CatalogServiceStub(channel)

    async def missing_products(self, product_ids: list[str]) -> list[str]:
        """The ids that are not products of the caller's merchant (the staff caller sees
        every status). UNAVAILABLE when the catalog cannot be asked: content never links
        a product nobody could check."""
        async def exists(product_id: str) -> bool:
            try:
                await self._stub.GetProduct(catalog_pb2.GetProductRequest(product_id=product_id), timeout=TIMEOUT_S)
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    return False
                raise errors.Unavailable("the linked products could not be checked; try again",
                                         reason="CATALOG_UNAVAILABLE") from error
            return True

        found = await asyncio.gather(*(exists(p) for p in product_ids))
        return [p for p, ok in zip(product_ids, found) if not ok]
