"""The live room's producers over their real processes, embedded MongoDB and NATS: the
gateways' viewer reports (ReportLiveViewers) counted and told in the room, a paid order of
a live session told once as "someone just bought", and a flash sale bound to a session
announced by the catalog's job. Each reads the room's own subject in the room stream."""
from __future__ import annotations

import asyncio
import time

import grpc
import nats
import pytest
from siyu.catalog.v1 import catalog_pb2_grpc
from siyu.common.v1 import common_pb2, live_pb2
from siyu.content.v1 import content_pb2 as pb, content_pb2_grpc
from siyu.order.v1 import events_pb2, order_pb2

from siyu_kit.events.outbox import decode, make_event
from siyu_kit.events.streams import LIVE_STREAM_TOPIC, stream_name
from siyu_kit.ids import new_id
from siyu_kit.protos import timestamp
from tests import support
from tests.support import metadata, new_merchant_id, reason, stub_fixture
from tests.support.flash_sale import create, now, reserve_request, internal
from tests.support.member import publish
from tests.support.order import make_skus

content = stub_fixture("content", content_pb2_grpc.ContentServiceStub)
catalog = stub_fixture("catalog", catalog_pb2_grpc.CatalogServiceStub)


async def room_events(stack, session_id: str, done, timeout: float = 15) -> list[live_pb2.LiveRoomEvent]:
    """The room's events from the start, read until `done(events)` holds (or the timeout)."""
    nc = await nats.connect(stack.nats_url)
    try:
        sub = await nc.jetstream().subscribe(f"siyu.live.room.{session_id}", stream=stream_name(LIVE_STREAM_TOPIC),
                                             ordered_consumer=True)
        found, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline and not done(found):
            try:
                msg = await sub.next_msg(timeout=0.5)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                continue
            event = live_pb2.LiveRoomEvent()
            decode(msg.data).payload.Unpack(event)
            found.append(event)
        return found
    finally:
        await nc.close()


def as_gateway(merchant_id: str):
    return metadata(merchant_id, service="gateway")


def report(stub, merchant_id, session_id, gateway_id, concurrent, joined=(), md=None):
    return stub.ReportLiveViewers(pb.ReportLiveViewersRequest(
        live_session_id=session_id, gateway_id=gateway_id, concurrent=concurrent, joined_member_ids=list(joined),
        lease_seconds=15), metadata=md or as_gateway(merchant_id))


def new_session(content, merchant: str) -> str:
    staff = metadata(merchant, staff_id=new_id("stf"), roles=("OPERATOR",))
    persona = content.UpsertPersona(pb.UpsertPersonaRequest(code=new_id("p")[-12:], name="小美"),
                                    metadata=staff).persona
    request = pb.CreateLiveSessionRequest(persona_id=persona.persona_id, title="直播", idempotency_key=new_id("k"),
                                          scheduled_at=timestamp(now()))
    return content.CreateLiveSession(request, metadata=staff).live_session.live_session_id


async def test_viewer_reports_count_a_member_once_sum_the_gateways_and_tell_the_room(stack, content):
    merchant, member = new_merchant_id(), new_id("mem")
    session = new_session(content, merchant)
    first = report(content, merchant, session, "gtw-a", 2, [member, member])
    assert (first.unique_viewers, first.concurrent_viewers, first.peak_concurrent_viewers) == (1, 2, 2)
    second = report(content, merchant, session, "gtw-b", 1, [member, new_id("mem")])
    assert (second.unique_viewers, second.concurrent_viewers, second.peak_concurrent_viewers) == (2, 3, 3)
    third = report(content, merchant, session, "gtw-a", 0)
    assert (third.unique_viewers, third.concurrent_viewers, third.peak_concurrent_viewers) == (2, 1, 3)
    # another merchant's report of the session is refused
    error = support.rpc_error(content.ReportLiveViewers, pb.ReportLiveViewersRequest(
        live_session_id=session, gateway_id="gtw-c", concurrent=5, lease_seconds=15),
        metadata=as_gateway(new_merchant_id()))
    assert error.code() == grpc.StatusCode.NOT_FOUND and reason(error) == "LIVE_SESSION_NOT_FOUND"
    events = await room_events(stack, session, lambda found: any(e.WhichOneof("kind") == "viewers_changed"
                                                                 for e in found))
    told = [e.viewers_changed for e in events if e.WhichOneof("kind") == "viewers_changed"]
    assert told and (told[0].unique_viewers, told[0].concurrent_viewers) == (1, 2)
    # the live session shows the figures
    room = content.GetLiveRoom(pb.GetLiveRoomRequest(live_session_id=session), metadata=metadata(merchant, channel="H5"))
    assert (room.live_session.unique_viewers, room.live_session.concurrent_viewers,
            room.live_session.peak_concurrent_viewers) == (2, 1, 3)


@pytest.mark.parametrize("joined, field", [(["mem_nope"], "joined_member_ids[0]")])
def test_a_bad_report_is_refused(content, joined, field):
    error = support.rpc_error(content.ReportLiveViewers, pb.ReportLiveViewersRequest(
        live_session_id=new_id("liv"), gateway_id="g", concurrent=1, joined_member_ids=joined, lease_seconds=15),
        metadata=as_gateway(new_merchant_id()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in support.field_violations(error)
    assert reason(error) == "INVALID_FIELDS"
    missing = support.rpc_error(content.ReportLiveViewers, pb.ReportLiveViewersRequest(
        live_session_id="liv_x", gateway_id="", concurrent=-1, lease_seconds=0), metadata=as_gateway(new_merchant_id()))
    assert {"live_session_id", "gateway_id", "concurrent", "lease_seconds"} <= set(support.field_violations(missing))


def test_only_a_service_may_report_viewers(content):
    merchant = new_merchant_id()
    error = support.rpc_error(content.ReportLiveViewers, pb.ReportLiveViewersRequest(
        live_session_id=new_id("liv"), gateway_id="g", concurrent=1, lease_seconds=15),
        metadata=metadata(merchant, channel="H5", member_id=new_id("mem")))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def paid_event(merchant_id: str, session_id: str, order_id: str, recipient: str):
    order = order_pb2.Order(order_id=order_id, member_id=new_id("mem"),
                            attribution=common_pb2.Attribution(live_session_id=session_id),
                            paid_at=timestamp(now()))
    order.lines.add(product_id=new_id("prd"), title="保温杯", quantity=2)
    order.shipping_address.recipient = recipient
    return make_event("siyu.order.order.paid", merchant_id=merchant_id, aggregate_id=order_id, aggregate_version=2,
                      payload=events_pb2.OrderPaid(order=order))


async def test_a_paid_order_of_the_session_is_told_once_with_a_masked_name(stack):
    merchant, session, order_id = new_merchant_id(), new_id("liv"), new_id("ord")
    # the same order twice (a redelivery, or a second paid event): told once; then, handled
    # after them by the same consumer, an order of no session and a last one that ends the wait
    await publish(stack, paid_event(merchant, session, order_id, "王小明"), paid_event(merchant, session, order_id, "王小明"),
                  paid_event(merchant, "", new_id("ord"), "李四"), paid_event(merchant, session, new_id("ord"), "赵"))
    events = await room_events(stack, session, lambda found: any(e.someone_bought.masked_nickname == "赵*"
                                                                 for e in found))
    assert [(e.WhichOneof("kind"), e.someone_bought.masked_nickname) for e in events] == [
        ("someone_bought", "王**"), ("someone_bought", "赵*")]
    bought = events[0].someone_bought
    assert (bought.product_title, bought.quantity) == ("保温杯", 2)


async def test_a_flash_sale_of_the_session_is_announced_started_then_its_units(stack, catalog):
    merchant, session = new_merchant_id(), new_id("liv")
    [sku] = make_skus(catalog, merchant, (1000, 50))
    sale = create(catalog, merchant, sku, units=10, limit=10, starts_in=-1, live_session_id=session)
    started = await room_events(stack, session, lambda found: len(found) >= 1)
    assert [e.WhichOneof("kind") for e in started] == ["flash_sale_started"]
    assert (started[0].flash_sale_started.flash_sale_id, started[0].flash_sale_started.total_units) == (sale.flash_sale_id, 10)
    catalog.ReserveFlashSale(reserve_request(sale.flash_sale_id, quantity=3), metadata=internal(merchant))
    events = await room_events(stack, session, lambda found: len(found) >= 2)
    assert [e.WhichOneof("kind") for e in events] == ["flash_sale_started", "stock_left"]
    assert events[1].stock_left.available_units == 7
    for _ in range(7):
        catalog.ReserveFlashSale(reserve_request(sale.flash_sale_id), metadata=internal(merchant))
    events = await room_events(stack, session, lambda found: found and found[-1].stock_left.available_units == 0
                               and found[-1].WhichOneof("kind") == "stock_left")
    lefts = [e.stock_left.available_units for e in events if e.WhichOneof("kind") == "stock_left"]
    assert lefts[0] == 7 and lefts[-1] == 0 and lefts == sorted(lefts, reverse=True)
    assert len(lefts) == len(set(lefts))  # only changes
