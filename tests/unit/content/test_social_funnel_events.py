"""Group and bargain events in the funnels: group joins (opened and joined), bargains
started and helps, each once by its event id, on the persona, channel and share code the
event carries; an empty or malformed dimension counts nowhere."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from siyu.common.v1 import common_pb2
from siyu.order.v1 import events_pb2

from siyu_kit import protos
from siyu_kit.events.consumer import Poison
from siyu_kit.ids import new_id

from services.content.application.contents import ContentUseCases
from services.content.application.funnels import FunnelUseCases
from services.content.application.personas import PersonaUseCases
from services.content.domain import funnels
from services.content.domain.funnels import Counters
from services.content.entrypoint.events import subscriptions
from tests.fakes.content import FakeContents, FakeFunnels, FakePersonas

MERCHANT = "mch_A"
AT = datetime(2026, 6, 1, 16, 30, tzinfo=timezone.utc)  # 2026-06-02 00:30 in Shanghai
DAY = "2026-06-02"


def world():
    class World:
        funnels = FakeFunnels()
    w = World()
    cases = FunnelUseCases(w.funnels, PersonaUseCases(FakePersonas()), ContentUseCases(FakeContents(), FakePersonas()))
    w.subs = {s.durable: s for s in subscriptions(cases)}
    w.handlers = {s.payload_type: s.handler for s in w.subs.values()}
    return w


@pytest.fixture
def w():
    return world()


def envelope(event_id: str = "") -> common_pb2.EventEnvelope:
    return common_pb2.EventEnvelope(event_id=event_id or new_id("evt"), merchant_id=MERCHANT,
                                    occurred_at=protos.timestamp(AT))


def ref(share_code: str = "SHARE1", persona_id: str = "per_1", channel: str = "MINI_PROGRAM",
        leader: bool = False) -> events_pb2.GroupOrderRef:
    return events_pb2.GroupOrderRef(order_id=new_id("ord"), member_id=new_id("mem"), share_code=share_code,
                                    persona_id=persona_id, channel=channel, leader=leader)


def bargain(share_code: str = "SHARE1", persona_id: str = "per_1",
            channel=common_pb2.CHANNEL_H5) -> events_pb2.BargainEvent:
    return events_pb2.BargainEvent(bargain_id="brg_1", activity_id="bga_1", member_id="mem_1", sku_id="sku_1",
                                   price=protos.money(9_000), helped=1, helpers_needed=3, channel=channel,
                                   persona_id=persona_id, share_code=share_code)


def day_of(w, dimension: str, ref_id: str) -> Counters:
    return w.funnels.buckets[(MERCHANT, dimension, ref_id, DAY)].counters


def test_the_new_counters_add_and_move_only_themselves():
    change = funnels.group_joined() + funnels.bargain_started() + funnels.bargain_helped() + funnels.bargain_helped()
    assert change == Counters(group_joins=1, bargain_starts=1, bargain_helps=2)
    assert change.as_increments() == {"group_joins": 1, "bargain_starts": 1, "bargain_helps": 2}
    assert Counters.names()[-3:] == ("group_joins", "bargain_starts", "bargain_helps")
    assert dict(zip(Counters.names(), change.as_tuple()))["bargain_helps"] == 2


def test_the_consumers_are_durable_on_the_order_stream(w):
    subjects = {d: s.subject for d, s in w.subs.items() if "group" in d or "bargain" in d}
    assert subjects == {"content-funnel-group-opened": "siyu.order.group.opened",
                        "content-funnel-group-joined": "siyu.order.group.joined",
                        "content-funnel-bargain-started": "siyu.order.bargain.started",
                        "content-funnel-bargain-helped": "siyu.order.bargain.helped"}
    assert {w.subs[d].source_stream for d in subjects} == {"SIYU_ORDER"}


async def test_opened_and_joined_count_one_group_join_each_once_by_event_id(w):
    opened = envelope()
    for _ in range(2):  # a redelivery
        await w.handlers[events_pb2.GroupOpened](opened, events_pb2.GroupOpened(order=ref(leader=True)))
    joined = envelope()
    for _ in range(3):
        await w.handlers[events_pb2.GroupJoined](joined, events_pb2.GroupJoined(order=ref()))
    await w.handlers[events_pb2.GroupJoined](envelope(), events_pb2.GroupJoined(order=ref()))
    for dimension, ref_id in (("persona", "per_1"), ("channel", "MINI_PROGRAM"), ("share_code", "SHARE1")):
        assert day_of(w, dimension, ref_id) == Counters(group_joins=3)


async def test_bargain_starts_and_helps_count_once_by_event_id(w):
    started = envelope()
    for _ in range(2):
        await w.handlers[events_pb2.BargainStarted](started, events_pb2.BargainStarted(bargain=bargain()))
    helps = [envelope() for _ in range(2)]
    for e in helps + helps:
        await w.handlers[events_pb2.BargainHelped](e, events_pb2.BargainHelped(bargain=bargain(), helper_id="mem_2"))
    for dimension, ref_id in (("persona", "per_1"), ("channel", "H5"), ("share_code", "SHARE1")):
        assert day_of(w, dimension, ref_id) == Counters(bargain_starts=1, bargain_helps=2)


async def test_empty_or_unknown_dimensions_are_skipped(w):
    await w.handlers[events_pb2.GroupJoined](envelope(), events_pb2.GroupJoined(
        order=ref(share_code="", persona_id="", channel="PIGEON")))
    await w.handlers[events_pb2.BargainHelped](envelope(), events_pb2.BargainHelped(
        bargain=bargain(persona_id="", channel=common_pb2.CHANNEL_UNSPECIFIED)))
    await w.handlers[events_pb2.BargainStarted](envelope(), events_pb2.BargainStarted(
        bargain=bargain(share_code="", persona_id="", channel=common_pb2.CHANNEL_UNSPECIFIED)))
    assert {(dim, ref_id) for (_, dim, ref_id, _) in w.funnels.buckets} == {("share_code", "SHARE1")}
    assert day_of(w, "share_code", "SHARE1") == Counters(bargain_helps=1)


async def test_an_event_without_an_id_or_merchant_is_poison(w):
    with pytest.raises(Poison):
        await w.handlers[events_pb2.GroupOpened](envelope("nope"), events_pb2.GroupOpened(order=ref()))
    with pytest.raises(Poison):
        await w.handlers[events_pb2.BargainStarted](
            common_pb2.EventEnvelope(event_id=new_id("evt"), occurred_at=protos.timestamp(AT)),
            events_pb2.BargainStarted(bargain=bargain()))
    assert w.funnels.buckets == {}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["opened", "joined", "started", "helped"]), st.integers(0, 5)),
                max_size=20), st.data())
async def test_any_redelivery_order_counts_each_event_once(events, data):
    w = world()
    sent = [(kind, envelope()) for kind, _ in events]
    deliveries = sent + data.draw(st.lists(st.sampled_from(sent), max_size=20)) if sent else []
    payloads = {"opened": (events_pb2.GroupOpened, lambda: events_pb2.GroupOpened(order=ref(leader=True))),
                "joined": (events_pb2.GroupJoined, lambda: events_pb2.GroupJoined(order=ref())),
                "started": (events_pb2.BargainStarted, lambda: events_pb2.BargainStarted(bargain=bargain())),
                "helped": (events_pb2.BargainHelped, lambda: events_pb2.BargainHelped(bargain=bargain()))}
    for kind, e in deliveries:
        kind_type, payload = payloads[kind]
        await w.handlers[kind_type](e, payload())
    kinds = [kind for kind, _ in sent]
    expected = Counters(group_joins=kinds.count("opened") + kinds.count("joined"),
                        bargain_starts=kinds.count("started"), bargain_helps=kinds.count("helped"))
    got = w.funnels.buckets.get((MERCHANT, "share_code", "SHARE1", DAY))
    assert (got.counters if got else Counters()) == expected
