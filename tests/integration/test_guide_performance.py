"""Guide performance in the content service over its real gRPC port, from order events
published on NATS as the order service's relay would: the referral's store and guide,
replays counted once, and the share code's sharer CheckAttribution names.

Run alone with: SIYU_TEST_ONLY=catalog,content .venv/bin/python -m pytest tests/integration/test_guide_performance.py
"""
from __future__ import annotations

from datetime import datetime, timezone

from siyu.common.v1 import common_pb2
from siyu.content.v1 import content_pb2 as pb, content_pb2_grpc
from siyu.order.v1 import events_pb2, order_pb2

from siyu_kit.events.outbox import make_event
from siyu_kit.ids import new_id
from tests.integration.test_content_service import publish, staff, upsert_persona
from tests.support import metadata, new_merchant_id, stub_fixture, wait_until

stub = stub_fixture("content", content_pb2_grpc.ContentServiceStub)
AT = datetime(2024, 5, 1, 16, 30, tzinfo=timezone.utc)  # 2024-05-02 in Shanghai
DAY = "2024-05-02"


def _order(amount: int, persona_id: str = "", guide_id: str = "", store: str = "") -> order_pb2.Order:
    o = order_pb2.Order(order_id=new_id("ord"), member_id=new_id("mem"), version=1,
                        total=common_pb2.Money(amount=amount, currency="CNY"),
                        payable=common_pb2.Money(amount=amount, currency="CNY"),
                        attribution=common_pb2.Attribution(channel=common_pb2.CHANNEL_H5, persona_id=persona_id),
                        referral=common_pb2.Referral(guide_id=guide_id, guide_store=store))
    o.created_at.FromDatetime(AT)
    o.paid_at.FromDatetime(AT)
    return o


def _events(merchant: str, o: order_pb2.Order) -> list:
    return [make_event("siyu.order.order.placed", merchant_id=merchant, aggregate_id=o.order_id, aggregate_version=1,
                       payload=events_pb2.OrderPlaced(order=o), occurred_at=AT),
            make_event("siyu.order.order.paid", merchant_id=merchant, aggregate_id=o.order_id, aggregate_version=2,
                       payload=events_pb2.OrderPaid(order=o), occurred_at=AT)]


def _stores(stub, merchant: str) -> dict[str, pb.Funnel]:
    resp = stub.ListStorePerformance(pb.ListStorePerformanceRequest(from_day=DAY, to_day=DAY),
                                        metadata=staff(merchant))
    return {s.store: s.total for s in resp.stores}


def test_the_referrals_store_and_guide_count_once_per_order(stack, stub):
    merchant = new_merchant_id()
    guide, persona_guide = new_id("stf"), new_id("stf")
    persona = upsert_persona(stub, merchant, code="gp-" + new_id("p")[-8:]).persona
    stub.AssignPersonaGuides(pb.AssignPersonaGuidesRequest(persona_id=persona.persona_id,
                                                           guide_ids=[persona_guide]), metadata=staff(merchant))
    sold = _order(8000, persona_id=persona.persona_id, guide_id=guide, store="SH-01")
    events = _events(merchant, sold)
    publish(stack, *((e, e.event_id) for e in events))
    # Re-sent with new event ids (a second delivery the consumer must drop), then a sentinel.
    again = _events(merchant, sold)
    sentinel = _order(100, guide_id=guide, store="BJ-01")
    publish(stack, *((e, e.event_id) for e in again + _events(merchant, sentinel)))
    # Both of the sentinel's events counted: each consumer handled the re-sent events before.
    wait_until(lambda: (lambda f: f.orders == 1 and f.paid_orders == 1)(_stores(stub, merchant).get(
        "BJ-01", pb.Funnel())), message="the sentinel's store counted")
    stores = _stores(stub, merchant)
    assert (stores["SH-01"].orders, stores["SH-01"].paid_orders, stores["SH-01"].gmv.amount) == (1, 1, 8000)
    in_store = stub.ListGuidePerformance(pb.ListGuidePerformanceRequest(from_day=DAY, to_day=DAY, store="SH-01"),
                                         metadata=staff(merchant)).guides
    assert [(g.guide_id, g.total.gmv.amount) for g in in_store] == [(guide, 8000)]
    everyone = stub.ListGuidePerformance(pb.ListGuidePerformanceRequest(from_day=DAY, to_day=DAY),
                                         metadata=staff(merchant)).guides
    assert sorted((g.guide_id, g.total.paid_orders, g.total.gmv.amount) for g in everyone) == sorted(
        [(guide, 2, 8100), (persona_guide, 1, 8000)])
    day = stub.GetStorePerformance(pb.GetStorePerformanceRequest(store="SH-01", from_day="2024-05-01", to_day=DAY),
                                   metadata=staff(merchant))
    assert [(d.day, d.funnel.paid_orders) for d in day.days] == [("2024-05-01", 0), (DAY, 1)]
    # The guide's own numbers, as they read them.
    mine = stub.GetMyGuidePerformance(pb.GetMyGuidePerformanceRequest(from_day=DAY, to_day=DAY),
                                      metadata=metadata(merchant, staff_id=persona_guide, roles=("GUIDE",)))
    assert (mine.guide_id, mine.total.orders, mine.total.gmv.amount) == (persona_guide, 1, 8000)


def test_check_attribution_names_the_sharer_of_a_code_in_its_window(stub):
    merchant = new_merchant_id()
    guide = new_id("stf")
    persona = upsert_persona(stub, merchant, code="gp-" + new_id("p")[-8:]).persona
    code = stub.CreateStaffShareCode(pb.CreateStaffShareCodeRequest(
        target_kind=pb.SHARE_TARGET_KIND_PERSONA, target_id=persona.persona_id),
        metadata=metadata(merchant, staff_id=guide, roles=("OPERATOR",))).share_code.code
    internal = metadata(merchant, channel="H5", service="order")
    member = new_id("mem")
    found = stub.CheckAttribution(pb.CheckAttributionRequest(share_code=code, member_id=member), metadata=internal)
    assert (found.share_code_in_window, found.share_code_sharer_id, found.persona_id) == (
        True, guide, persona.persona_id)
    none = stub.CheckAttribution(pb.CheckAttributionRequest(share_code="ZZZZZZZZZZ", member_id=member),
                                 metadata=internal)
    assert (none.share_code_found, none.share_code_sharer_id) == (False, "")
