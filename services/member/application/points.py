"""Points and growth from paid orders: one ledger entry per order, whatever the replays."""
from __future__ import annotations

from datetime import timezone
from typing import Callable

from pymongo.errors import DuplicateKeyError
from siyu.common.v1 import common_pb2
from siyu.member.v1 import events_pb2
from siyu.order.v1 import events_pb2 as order_events

from services.member.adapters import repositories as repo
from services.member.application.merchants import merchant_config
from services.member.application.views import entry_proto
from services.member.domain import points as ledger_rules, tiers
from siyu_kit import logging as slog
from siyu_kit.db import run_sync
from siyu_kit.events import outbox
from siyu_kit.events.consumer import Poison
from siyu_kit.events.streams import subject_of
from siyu_kit.ids import new_id
from siyu_kit.protos import CHANNEL_NAME, utcnow

EARNED = subject_of("member", "points", "earned")
log = slog.get("siyu.member.points")


class OrderPoints:
    def __init__(self, committed: Callable[[], None]):
        self.committed = committed

    async def on_order_paid(self, envelope: common_pb2.EventEnvelope, paid: order_events.OrderPaid) -> None:
        order = paid.order
        merchant_id = envelope.merchant_id
        if not (merchant_id and order.order_id and order.member_id) or order.payable.amount < 0:
            raise Poison("an OrderPaid needs merchant, order, member and a payable amount ≥ 0")
        if await run_sync(repo.find_member, merchant_id, order.member_id) is None:
            raise Poison(f"no member {order.member_id} in this merchant")
        config = await merchant_config(merchant_id)
        growth = sum(await run_sync(repo.growth_entries, merchant_id, order.member_id))
        earning = ledger_rules.earn_for_payment(order.payable.amount, tiers.multiplier_bp(growth, config))
        paid_at = (order.paid_at if order.HasField("paid_at") else envelope.occurred_at).ToDatetime(tzinfo=timezone.utc)
        now = utcnow()
        doc = {"_id": new_id("pte"), "merchant_id": merchant_id, "member_id": order.member_id, "source": "ORDER",
               "source_id": order.order_id, "points": earning.points, "growth": earning.growth, "frozen": 1,
               "frozen_until": ledger_rules.frozen_until(paid_at, config.points_frozen_days), "created_at": now}
        event = outbox.make_event(
            EARNED, merchant_id=merchant_id, aggregate_id=doc["_id"], aggregate_version=1,
            channel=CHANNEL_NAME.get(envelope.channel, ""),
            payload=events_pb2.PointsEarned(member_id=order.member_id, entry=entry_proto(doc)))
        doc.update(outbox.for_insert(event))
        try:
            await run_sync(repo.insert_points_entry, doc)
        except DuplicateKeyError:
            log.info("points.already_applied", order_id=order.order_id, event_id=envelope.event_id)
            return
        self.committed()
        log.info("points.earned", order_id=order.order_id, member_id=order.member_id, points=earning.points)
