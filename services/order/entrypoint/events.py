"""Catalog events the order service acts on: a paid order whose units were gone is
refunded and cancelled."""
from __future__ import annotations

from siyu.catalog.v1 import events_pb2 as catalog_events
from siyu.common.v1 import common_pb2

from siyu_kit.errors import FailedPrecondition, NotFound
from siyu_kit.events.consumer import Poison, Subscription

from services.order.application.payments import PaymentUseCases


def subscriptions(payments: PaymentUseCases) -> list[Subscription]:
    async def unfulfillable(envelope: common_pb2.EventEnvelope, payload: catalog_events.ReservationChanged) -> None:
        reservation = payload.reservation
        try:
            await payments.refund_unfulfillable(envelope.merchant_id, reservation.order_id,
                                                reservation.reservation_id)
        except (NotFound, FailedPrecondition) as error:
            # No such paid order, or it shipped meanwhile: a person has to look (dead letters).
            raise Poison(f"order {reservation.order_id}: {error}") from error

    return [Subscription.to("order-reservation-unfulfillable", catalog_events.ReservationChanged, unfulfillable,
                            verb="unfulfillable")]
