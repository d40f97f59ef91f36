"""The member service's checkout caches: a member's growth is kept until one of their
points events reaches the process; distribution settings until their time-to-live, or at
once when this process changed them."""
from __future__ import annotations

from google.protobuf import any_pb2
from siyu.common.v1 import common_pb2
from siyu.member.v1 import events_pb2, member_pb2

from siyu_kit.events import invalidation
from siyu_kit.ids import new_id

from services.member.entrypoint import checkout_caches
from tests.fakes.points_world import earn, points_world, service


def points_event(merchant_id: str, member_id: str, kind=events_pb2.PointsMoved,
                 growth_change: int = -600) -> common_pb2.EventEnvelope:
    payload = any_pb2.Any()
    payload.Pack(kind(member_id=member_id, entry=member_pb2.PointsEntry(growth_change=growth_change)))
    return common_pb2.EventEnvelope(event_id=new_id("evt"), merchant_id=merchant_id, payload=payload)


def listener_of(subject: str):
    return [listener for s, listener in invalidation._listeners if s == subject][-1]


async def test_growth_is_kept_until_a_points_event_of_the_member_drops_it():
    w = await points_world()
    order_id = await earn(w, 150_000)  # ¥1,500: SILVER
    pricing = checkout_caches.pricing(w.merchants, w.ledger)
    heard = listener_of(checkout_caches.POINTS_SUBJECTS)
    with service(w):
        assert (await pricing.of(w.member))[0] == "SILVER"
        await w.economy.reverse(w.member, order_id, new_id("rfd"), 0, 0, refunded=60_000, paid=150_000)
        # Not yet heard: the growth kept is the one read.
        assert (await pricing.of(w.member))[0] == "SILVER"
        heard(points_event(w.m.id, new_id("mem")))  # another member's event changes nothing
        assert (await pricing.of(w.member))[0] == "SILVER"
        heard(points_event(w.m.id, w.member, growth_change=0))  # points held or spent: growth stays
        assert (await pricing.of(w.member))[0] == "SILVER"
        heard(points_event(w.m.id, w.member))
        assert (await pricing.of(w.member))[0] == "REGULAR"


async def test_an_earning_event_drops_the_growth_too():
    w = await points_world()
    pricing = checkout_caches.pricing(w.merchants, w.ledger)
    heard = listener_of(checkout_caches.POINTS_SUBJECTS)
    with service(w):
        assert (await pricing.of(w.member))[0] == "REGULAR"
        await earn(w, 150_000)
        heard(points_event(w.m.id, w.member, events_pb2.PointsEarned))
        assert (await pricing.of(w.member))[0] == "SILVER"
