"""Calls to the order service as a member or staff, products to buy, and reading the
order stream."""
from __future__ import annotations

import asyncio
import time

import nats
from siyu.catalog.v1 import catalog_pb2
from siyu.common.v1 import common_pb2
from siyu.order.v1 import order_pb2 as OS

from siyu_kit.events.outbox import decode
from siyu_kit.ids import new_id
from tests.support import metadata


def staff(mid: str):
    return metadata(mid, staff_id=new_id("stf"), roles=("OWNER",))


def member(mid: str, member_id: str = "", ch: str = "H5"):
    return metadata(mid, channel=ch, member_id=member_id or new_id("mem"))


def make_skus(catalog, mid: str, *specs: tuple[int, int], status=catalog_pb2.PRODUCT_STATUS_ON_SHELF) -> list[str]:
    """One product with a SKU per (price, stock); returns the sku ids in order."""
    resp = catalog.UpsertProduct(catalog_pb2.UpsertProductRequest(
        code=f"P{new_id('x')[-10:]}", title="测试商品 Test", status=status,
        skus=[catalog_pb2.SkuInput(code=f"S{i}", attributes={"尺码": f"M{i}"},
                                   list_price=common_pb2.Money(amount=price, currency="CNY"), initial_stock=stock)
              for i, (price, stock) in enumerate(specs)]), metadata=staff(mid))
    by_code = {s.code: s.sku_id for s in resp.product.skus}
    return [by_code[f"S{i}"] for i in range(len(specs))]


def stock(catalog, mid: str, sku_id: str) -> catalog_pb2.Stock:
    return catalog.GetStock(catalog_pb2.GetStockRequest(sku_id=sku_id), metadata=staff(mid)).stock


def place(order, md, key: str, *lines: tuple[str, int], **extra) -> OS.Order:
    return order.PlaceOrder(OS.PlaceOrderRequest(
        idempotency_key=key, lines=[OS.OrderLineInput(sku_id=s, quantity=q) for s, q in lines], **extra),
        metadata=md).order


def my_orders(order, md) -> list[OS.Order]:
    return list(order.ListMyOrders(OS.ListMyOrdersRequest(page_size=100), metadata=md).orders)


async def events_found(stack, subject: str, aggregate_id: str, want: int = 1, timeout: float = 15) -> list:
    """Envelopes on `subject` for one aggregate, read from the start of the stream; waits
    until `want` arrived, then drains what else is there."""
    nc = await nats.connect(stack.nats_url)
    try:
        sub = await nc.jetstream().subscribe(subject, stream="SIYU_ORDER", ordered_consumer=True)
        found, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = await sub.next_msg(timeout=0.5 if len(found) >= want else 1.0)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                if len(found) >= want:
                    break
                continue
            envelope = decode(msg.data)
            if envelope.aggregate_id == aggregate_id:
                found.append(envelope)
        return found
    finally:
        await nc.close()
