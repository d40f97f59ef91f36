"""The catalog service's stock and SKU API, seen from the order service."""
from __future__ import annotations

from datetime import datetime, timezone

import grpc
from siyu.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from siyu_kit import errors
from siyu_kit.cancellation import timeout
from siyu_kit.grpc_server import details_of
from siyu_kit.protos import timestamp

from services.order.application.ports import ActivityPool, FlashReservation, LimitedTimePrice, SkuInfo

__all__ = ["ActivityPool", "CatalogClient", "FlashReservation", "LimitedTimePrice", "SkuInfo"]

TIMEOUT_S = 10.0
_KIND_NUMBERS = {"FLASH_SALE": catalog_pb2.ACTIVITY_KIND_FLASH_SALE, "GROUP_BUY": catalog_pb2.ACTIVITY_KIND_GROUP_BUY,
                 "BARGAIN": catalog_pb2.ACTIVITY_KIND_BARGAIN, "POINTS_MALL": catalog_pb2.ACTIVITY_KIND_POINTS_MALL}
_KIND_NAMES = {number: name for name, number in _KIND_NUMBERS.items()}
_ON_SHELF = catalog_pb2.PRODUCT_STATUS_ON_SHELF


def _limited_time(sku: catalog_pb2.Sku) -> LimitedTimePrice | None:
    if not sku.HasField("limited_time_price"):
        return None
    ltp = sku.limited_time_price
    return LimitedTimePrice(
        price=ltp.price.amount,
        starts_at=ltp.starts_at.ToDatetime(tzinfo=timezone.utc) if ltp.HasField("starts_at") else None,
        ends_at=ltp.ends_at.ToDatetime(tzinfo=timezone.utc) if ltp.HasField("ends_at") else None)


def _status(error: grpc.aio.AioRpcError) -> tuple[str, list[errors.FieldViolation]]:
    """The reason and field violations the catalog attached to its error."""
    details = details_of(error.trailing_metadata())
    return (details.reason, list(details.violations)) if details else ("", [])


def _translate(error: grpc.aio.AioRpcError, what: str) -> errors.DomainError:
    reason, violations = _status(error)
    code = error.code()
    if reason == "OUT_OF_STOCK" or code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return errors.FailedPrecondition(error.details() or "not enough stock", reason="OUT_OF_STOCK",
                                         violations=violations)
    if code == grpc.StatusCode.NOT_FOUND:
        return errors.NotFound(error.details() or f"{what}: not found", reason=reason, violations=violations)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return errors.FailedPrecondition(error.details() or what, reason=reason, violations=violations)
    if code == grpc.StatusCode.INVALID_ARGUMENT and violations:
        # What the caller asked for (an activity's price or units), in the caller's words.
        return errors.InvalidArgument(error.details() or what, reason=reason or "INVALID_FIELDS",
                                      violations=violations)
    return errors.Unavailable(f"the catalog could not {what}", reason="CATALOG_UNAVAILABLE")


class CatalogClient:
    def __init__(self, channel: grpc.aio.Channel):
        self._stub = catalog_pb2_grpc.CatalogServiceStub(channel)

    async def skus(self, sku_ids: list[str]) -> dict[str, SkuInfo]:
        try:
            resp = await self._stub.GetSkus(catalog_pb2.GetSkusRequest(sku_ids=sku_ids), timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            raise _translate(error, "look up the SKUs") from error
        return {
            d.sku.sku_id: SkuInfo(sku_id=d.sku.sku_id, product_id=d.sku.product_id, title=d.product_title,
                                  unit_price=d.sku.list_price.amount, currency=d.sku.list_price.currency or "CNY",
                                  on_shelf=d.product_status == _ON_SHELF, available=d.sku.available,
                                  tier_prices={t.tier.removeprefix("TIER_"): t.price.amount
                                               for t in d.sku.tier_prices},
                                  limited_time=_limited_time(d.sku), weight_g=max(d.sku.weight_g, 0),
                                  category_path=tuple(d.category_path),
                                  commission_excluded=d.sku.commission_excluded)
            for d in resp.skus
        }

    async def reserve(self, reservation_id: str, order_id: str, lines: list[tuple[str, int]],
                      expires_at: datetime) -> None:
        request = catalog_pb2.ReserveStockRequest(
            reservation_id=reservation_id, order_id=order_id, expires_at=timestamp(expires_at),
            lines=[catalog_pb2.ReservationLine(sku_id=s, quantity=q) for s, q in lines])
        try:
            # No longer than the caller of this order waits: past that, the reserve is given up.
            await self._stub.ReserveStock(request, timeout=timeout(TIMEOUT_S))
        except grpc.aio.AioRpcError as error:
            raise _translate(error, "reserve the stock") from error

    async def release(self, reservation_id: str) -> None:
        try:
            await self._stub.ReleaseReservation(
                catalog_pb2.ReleaseReservationRequest(reservation_id=reservation_id), timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            raise _translate(error, "release the reservation") from error

    async def return_stock(self, return_id: str, order_id: str, lines: list[tuple[str, int]]) -> None:
        """Refunded units that never shipped go back on hand. Idempotent by return_id."""
        request = catalog_pb2.ReturnStockRequest(
            return_id=return_id, order_id=order_id,
            lines=[catalog_pb2.ReservationLine(sku_id=s, quantity=q) for s, q in lines])
        try:
            await self._stub.ReturnStock(request, timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            raise _translate(error, "return the stock") from error

    async def reserve_flash_sale(self, reservation_id: str, order_id: str, flash_sale_id: str, member_id: str,
                                 quantity: int, expires_at: datetime, kind: str = "FLASH_SALE") -> FlashReservation:
        """Units from a running flash sale's pool for the member. A member who gets none
        gets FAILED_PRECONDITION with the catalog's reason (SOLD_OUT, LIMIT_REACHED,
        NOT_STARTED, ENDED) and message, and NOT_FOUND for a sale that does not exist."""
        request = catalog_pb2.ReserveFlashSaleRequest(
            reservation_id=reservation_id, order_id=order_id, flash_sale_id=flash_sale_id, member_id=member_id,
            quantity=quantity, expires_at=timestamp(expires_at), kind=_KIND_NUMBERS[kind])
        try:
            resp = await self._stub.ReserveFlashSale(request, timeout=timeout(TIMEOUT_S))
        except grpc.aio.AioRpcError as error:
            raise _translate(error, "reserve the flash sale") from error
        return FlashReservation(sku_id=resp.flash_sale.sku_id, unit_price=resp.flash_sale.price.amount)

    async def create_pool(self, idempotency_key: str, kind: str, sku_id: str, price: int, units: int,
                          per_member_limit: int, starts_at: datetime, ends_at: datetime,
                          title: str = "") -> ActivityPool:
        request = catalog_pb2.CreateFlashSaleRequest(
            idempotency_key=idempotency_key, kind=_KIND_NUMBERS[kind], sku_id=sku_id,
            units=units,
            per_member_limit=per_member_limit, starts_at=timestamp(starts_at), ends_at=timestamp(ends_at), title=title)
        request.price.amount, request.price.currency = price, "CNY"
        try:
            resp = await self._stub.CreateFlashSale(request, timeout=timeout(TIMEOUT_S))
        except grpc.aio.AioRpcError as error:
            raise _translate(error, "make the activity's pool") from error
        return _pool(resp.flash_sale)

    async def pool(self, pool_id: str) -> ActivityPool | None:
        try:
            resp = await self._stub.GetFlashSale(catalog_pb2.GetFlashSaleRequest(flash_sale_id=pool_id),
                                                 timeout=timeout(TIMEOUT_S))
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise _translate(error, "read the activity's pool") from error
        return _pool(resp.flash_sale)


def _pool(sale: catalog_pb2.FlashSale) -> ActivityPool:
    return ActivityPool(pool_id=sale.flash_sale_id, kind=_KIND_NAMES.get(sale.kind, "FLASH_SALE"),
                        product_id=sale.product_id, sku_id=sale.sku_id, title=sale.title, price=sale.price.amount,
                        list_price=sale.list_price.amount, total=sale.total_units, available=sale.available_units,
                        reserved=sale.reserved_units, sold=sale.sold_units, per_member_limit=sale.per_member_limit)
