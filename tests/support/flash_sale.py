"""Flash sales: creating one, reserving from its pool, and buying through the order
service."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from siyu.catalog.v1 import catalog_pb2 as CS
from siyu.order.v1 import order_pb2 as OS

from siyu_kit.ids import new_id
from siyu_kit.protos import timestamp
from tests.support import metadata
from tests.support.order import staff


def shopper(mid: str):
    return metadata(mid, channel="LIVE")


def internal(mid: str):
    return metadata(mid, service="order")


def now() -> datetime:
    return datetime.now(timezone.utc)


def create(catalog, mid: str, sku_id: str, *, units=20, price=100, limit=0, starts_in=-60.0, lasts=3600.0,
           key: str = "", **extra) -> CS.FlashSale:
    start = now() + timedelta(seconds=starts_in)
    return catalog.CreateFlashSale(CS.CreateFlashSaleRequest(
        sku_id=sku_id, price={"amount": price}, units=units, per_member_limit=limit, starts_at=timestamp(start),
        ends_at=timestamp(start + timedelta(seconds=lasts)), idempotency_key=key or new_id("k"), **extra),
        metadata=staff(mid)).flash_sale


def reserve_request(sale_id: str, member_id: str = "", quantity: int = 1, expires_in: float = 600):
    return CS.ReserveFlashSaleRequest(
        reservation_id=new_id("rsv"), order_id=new_id("ord"), flash_sale_id=sale_id,
        member_id=member_id or new_id("mem"), quantity=quantity,
        expires_at=timestamp(now() + timedelta(seconds=expires_in)))


def get_sale(catalog, mid: str, sale_id: str) -> CS.FlashSale:
    return catalog.GetFlashSale(CS.GetFlashSaleRequest(flash_sale_id=sale_id), metadata=shopper(mid)).flash_sale


def levels(catalog, mid: str, sku_id: str) -> tuple[int, int, int]:
    s = catalog.GetStock(CS.GetStockRequest(sku_id=sku_id), metadata=staff(mid)).stock
    return s.on_hand, s.reserved, s.available


def buyer(mid: str, member_id: str = ""):
    return metadata(mid, channel="LIVE", member_id=member_id or new_id("mem"))


def buy_request(sale_id: str, key: str = "", quantity: int = 0, **extra) -> OS.PlaceFlashSaleOrderRequest:
    return OS.PlaceFlashSaleOrderRequest(flash_sale_id=sale_id, idempotency_key=key or new_id("k"),
                                         quantity=quantity, **extra)


def flash_expiry(order, mid: str, seconds: int) -> None:
    md = staff(mid)
    current = order.GetOrderSettings(OS.GetOrderSettingsRequest(), metadata=md).settings
    current.flash_sale_expiry_seconds = seconds
    order.UpdateOrderSettings(OS.UpdateOrderSettingsRequest(settings=current), metadata=md)
