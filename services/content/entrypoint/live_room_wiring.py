"""The live-room part of the content service: the gateways' viewer reports
(ReportLiveViewers) and "someone just bought", told in the room once per paid order
attributed to a live session."""
from __future__ import annotations

from datetime import timezone

from siyu.common.v1 import common_pb2
from siyu.content.v1 import content_pb2
from siyu.order.v1 import events_pb2

from siyu_kit.events.consumer import Poison, Subscription
from siyu_kit.ids import is_id
from siyu_kit.service import Parts

from services.content.adapters import live_viewer_store as store
from services.content.application.live_viewer_ports import LiveSessions
from services.content.application.member_data import LiveViewingData
from services.content.application.live_viewers import LivePurchaseUseCases, LiveViewerUseCases, ViewerReport
from services.content.domain.live_room import Purchase


class LiveViewerRpcs:
    """ReportLiveViewers (mixed into ContentServicer)."""
    live_viewers: LiveViewerUseCases

    async def ReportLiveViewers(self, request, context):
        figures = await self.live_viewers.report(ViewerReport(
            live_session_id=request.live_session_id, gateway_id=request.gateway_id, concurrent=request.concurrent,
            joined_member_ids=tuple(request.joined_member_ids), lease_seconds=request.lease_seconds))
        return content_pb2.ReportLiveViewersResponse(unique_viewers=figures.unique,
                                                     concurrent_viewers=figures.concurrent,
                                                     peak_concurrent_viewers=figures.peak)


def purchase_of(envelope: common_pb2.EventEnvelope, order) -> Purchase | None:
    """The room's view of a paid order: None unless it is attributed to a live session."""
    session_id = order.attribution.live_session_id
    if not session_id:
        return None
    if not is_id(session_id, "liv") or not envelope.merchant_id or not order.order_id:
        raise Poison(f"order {order.order_id!r} names live session {session_id!r} without what the room needs")
    if not order.lines:
        return None
    line = order.lines[0]
    paid = order.paid_at if order.HasField("paid_at") else envelope.occurred_at
    name = order.shipping_address.recipient if order.HasField("shipping_address") else ""
    return Purchase(merchant_id=envelope.merchant_id, order_id=order.order_id, live_session_id=session_id,
                    buyer_name=name, product_id=line.product_id, product_title=line.title,
                    quantity=int(line.quantity),
                    at_ms=int(paid.ToDatetime(tzinfo=timezone.utc).timestamp() * 1000))


def subscriptions(purchases: LivePurchaseUseCases) -> list[Subscription]:
    async def on_paid(envelope: common_pb2.EventEnvelope, payload: events_pb2.OrderPaid) -> None:
        purchase = purchase_of(envelope, payload.order)
        if purchase is not None:
            await purchases.paid(purchase)  # a second delivery finds the order told already

    return [Subscription.to("content-live-order-paid", events_pb2.OrderPaid, on_paid)]


_STATS = store.MongoLiveViewerStats()


def viewer_stats() -> store.MongoLiveViewerStats:
    """The viewer figures the live sessions read (LiveViewerStats)."""
    return _STATS


def member_data_part() -> LiveViewingData:
    """The sessions each member watched, in the member's export and erasure."""
    return LiveViewingData(store.MongoLiveViewing())


class SessionsOf:
    """Whether a session is the merchant's, from the live sessions' repository."""

    def __init__(self, repository):
        self.repository = repository

    async def exists(self, merchant_id: str, live_session_id: str) -> bool:
        return await self.repository.get(merchant_id, live_session_id) is not None


def add_to(parts: Parts, sessions: LiveSessions | None = None) -> None:
    """Adds the live room's RPC, outboxes and consumer to the content service's parts."""
    store.ensure_indexes()
    viewers = LiveViewerUseCases(_STATS, _STATS, sessions=sessions)
    for _, servicer, _ in parts.servicers:
        if isinstance(servicer, LiveViewerRpcs):
            servicer.live_viewers = viewers
    parts.outbox_collections.extend(store.outbox_collections())
    parts.subscriptions.extend(subscriptions(LivePurchaseUseCases(store.MongoRoomPurchases())))
