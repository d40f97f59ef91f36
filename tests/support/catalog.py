"""Calls to the catalog service as staff, a shopper or the order service, and order
events to feed its consumers."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from google.protobuf import timestamp_pb2
from siyu.catalog.v1 import catalog_pb2 as pb
from siyu.order.v1 import order_pb2

from siyu_kit import context
from siyu_kit.events.outbox import make_event
from siyu_kit.ids import new_id
from tests.support import metadata


def staff(m):
    return metadata(m, staff_id="stf_1", roles=("OPERATOR",))


def shopper(m):
    return metadata(m, channel="MINI_PROGRAM")


def internal(m):
    return metadata(m, service="order")


def sku_input(code, price=1000, stock=10, **attrs):
    return pb.SkuInput(code=code, list_price={"amount": price}, initial_stock=stock, attributes=attrs)


def upsert(stub, m, code="P1", title="Summer Dress", skus=None, status=pb.PRODUCT_STATUS_ON_SHELF, **kw):
    req = pb.UpsertProductRequest(code=code, title=title, status=status,
                                  skus=skus if skus is not None else [sku_input("S1")], **kw)
    return stub.UpsertProduct(req, metadata=staff(m))


def stock_of(stub, m, sku_id):
    return stub.GetStock(pb.GetStockRequest(sku_id=sku_id), metadata=staff(m)).stock


def ts(dt):
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(dt)
    return out


def reserve(stub, m, lines, rid=None, expires_in=600):
    req = pb.ReserveStockRequest(reservation_id=rid or new_id("rsv"), order_id=new_id("ord"),
                                 lines=[pb.ReservationLine(sku_id=s, quantity=q) for s, q in lines],
                                 expires_at=ts(datetime.now(timezone.utc) + timedelta(seconds=expires_in)))
    return stub.ReserveStock(req, metadata=internal(m)).reservation


async def _publish(stack, subject, data, msg_id):
    import nats
    nc = await nats.connect(stack.nats_url)
    try:
        return (await nc.jetstream().publish(subject, data, headers={"Nats-Msg-Id": msg_id})).seq
    finally:
        await nc.close()


def order_event(subject, m, rid, payload_cls, **extra):
    token = context.use(context.RequestContext(request_id=new_id("req")))
    try:
        order = order_pb2.Order(order_id=new_id("ord"), reservation_id=rid)
        return make_event(subject, merchant_id=m, aggregate_id=order.order_id, aggregate_version=2,
                          payload=payload_cls(order=order, **extra))
    finally:
        context.reset(token)
