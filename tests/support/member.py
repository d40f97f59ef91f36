"""Member logins, and order.paid events published for the member service to consume."""
from __future__ import annotations

from datetime import datetime, timezone

import nats
from siyu.member.v1 import member_pb2 as pb
from siyu.order.v1 import events_pb2 as order_events, order_pb2

from siyu.common.v1 import common_pb2

from siyu_kit.events.outbox import make_event
from siyu_kit.ids import new_id
from siyu_kit.protos import money, timestamp
from tests.support import metadata


def merchant_with_key(stub, prefix: str, name: str) -> tuple[str, str]:
    """A fresh merchant and its H5 channel key, made through the member service."""
    ops = metadata(service="test")
    merchant_id = stub.UpsertMerchant(pb.UpsertMerchantRequest(code=f"{prefix}-" + new_id("x")[-20:].lower(),
                                                               name=name), metadata=ops).merchant.merchant_id
    key = "key-" + new_id("k").lower()
    stub.UpsertApiKey(pb.UpsertApiKeyRequest(merchant_id=merchant_id, channel=common_pb2.CHANNEL_H5, api_key=key),
                      metadata=ops)
    return merchant_id, key


def login(stub, merchant_id, unionid, ch="H5", nickname=""):
    return stub.Login(pb.LoginRequest(code=f"sandbox:{unionid}", nickname=nickname),
                      metadata=metadata(merchant_id, channel=ch))


def order_paid(merchant_id, member_id, order_id, payable_fen):
    order = order_pb2.Order(order_id=order_id, member_id=member_id, payable=money(payable_fen),
                            paid_at=timestamp(datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc)))
    return make_event("siyu.order.order.paid", merchant_id=merchant_id, aggregate_id=order_id, aggregate_version=2,
                      payload=order_events.OrderPaid(order=order), channel="MINI_PROGRAM")


async def publish(stack, *events):
    nc = await nats.connect(stack.nats_url)
    try:
        js = nc.jetstream()
        for event in events:
            await js.publish(event.subject, event.data, headers={"Nats-Msg-Id": event.event_id})
    finally:
        await nc.close()
