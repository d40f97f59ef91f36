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

    async def shown(self, product_ids: list[str]) -> list[catalog_pb2.Product]:
        """The products as the caller sees them on their channel (with a member's token the
        catalog fills each SKU's member_price), in order, asked in parallel; those the catalog
        does not show (removed, off the shelf) are left out."""
        async def one(product_id: str) -> catalog_pb2.Product | None:
            try:
                response = await self._stub.GetProduct(catalog_pb2.GetProductRequest(product_id=product_id),
                                                       timeout=TIMEOUT_S)
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                raise errors.Unavailable("the linked products could not be read; try again",
                                         reason="CATALOG_UNAVAILABLE") from error
            return response.product

        found = await asyncio.gather(*(one(p) for p in product_ids))
        return [p for p in found if p is not None]

    async def listed(self, category_id: str = "", tag: str = "", limit: int = 20) -> list[catalog_pb2.Product]:
        """Products on shelf in the category (with its sub-categories) or with the tag, most
        units sold first, as the caller sees them (a member: with their price)."""
        request = catalog_pb2.ListProductsRequest(category_id=category_id, tag=tag, page_size=limit,
                                                  sort=catalog_pb2.PRODUCT_SORT_SALES_DESC)
        try:
            response = await self._stub.ListProducts(request, timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            raise errors.Unavailable("the catalog could not be read; try again",
                                     reason="CATALOG_UNAVAILABLE") from error
        return list(response.products)
