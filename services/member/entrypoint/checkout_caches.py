"""What the checkout's hot path keeps in memory in this service, and the events that drop it.

A member's growth (their tier) is kept until one of their points events that changes it
(`siyu.member.points.*` with a growth change: every earning and reversal of growth is one)
reaches this process; every replica listens. A paid order earns growth, so a member's next
order reads it again. The merchant's tier discounts are kept 5 s (MemberPricing's TTL)."""
from __future__ import annotations

from siyu.member.v1 import events_pb2

from services.member.application.ports import MerchantRepository, PointsLedger
from services.member.application.pricing import MemberPricing
from siyu_kit.events.invalidation import TtlCache, on_events

# The bound on a missed event: a growth change reaches checkout at most this late.
GROWTH_TTL_S = 60.0
POINTS_SUBJECTS = "siyu.member.points.>"


def pricing(merchants: MerchantRepository, ledger: PointsLedger) -> MemberPricing:
    cases = MemberPricing(merchants, ledger, growth=TtlCache(GROWTH_TTL_S))

    def points_event(envelope) -> None:
        moved = events_pb2.PointsMoved()
        earned = events_pb2.PointsEarned()
        if envelope.payload.Unpack(moved):
            if moved.entry.growth_change:  # holding or spending points leaves growth alone
                cases.points_moved(envelope.merchant_id, moved.member_id)
        elif envelope.payload.Unpack(earned):
            cases.points_moved(envelope.merchant_id, earned.member_id)
        elif cases.growth is not None:
            cases.growth.clear()  # an event of a shape this process does not know: forget everything

    on_events(POINTS_SUBJECTS, points_event)
    return cases
