"""Catalog aggregates as proto messages, and their domain events as the events published."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from siyu.catalog.v1 import catalog_pb2, events_pb2

from siyu_kit.events.outbox import Event, event_for
from siyu_kit.protos import money, timestamp, utcnow

from services.catalog.domain import flash_sales as flash_rules, stock as rules
from services.catalog.domain.flash_sales import FlashSale
from services.catalog.domain.reservations import (Reservation, ReservationCommitted, ReservationReleased,
                                                  ReservationReserved, ReservationUnfulfillable)

RESERVATION_STATES = {rules.RESERVED: catalog_pb2.RESERVATION_STATE_RESERVED,
                      rules.COMMITTED: catalog_pb2.RESERVATION_STATE_COMMITTED,
                      rules.RELEASED: catalog_pb2.RESERVATION_STATE_RELEASED}
FLASH_SALE_STATES = {flash_rules.SCHEDULED: catalog_pb2.FLASH_SALE_STATE_SCHEDULED,
                     flash_rules.RUNNING: catalog_pb2.FLASH_SALE_STATE_RUNNING,
                     flash_rules.ENDED: catalog_pb2.FLASH_SALE_STATE_ENDED}
# Each reservation event: the subject's verb and the state the reservation shows in it.
_RESERVATION_EVENTS = {ReservationReserved: ("reserved", rules.RESERVED),
                       ReservationCommitted: ("committed", rules.COMMITTED),
                       ReservationReleased: ("released", rules.RELEASED),
                       ReservationUnfulfillable: ("unfulfillable", rules.RELEASED)}


def reservation_message(reservation: Reservation, state: str | None = None) -> catalog_pb2.Reservation:
    return catalog_pb2.Reservation(
        reservation_id=reservation.id, order_id=reservation.order_id,
        state=RESERVATION_STATES[state or reservation.state],
        lines=[catalog_pb2.ReservationLine(sku_id=line.sku_id, quantity=line.quantity) for line in reservation.lines],
        expires_at=timestamp(reservation.expires_at), flash_sale_id=reservation.flash_sale_id)


def reservation_events(reservation: Reservation, events: Sequence[Any], version: int) -> list[Event]:
    """The events to store with a reservation saved at `version`."""
    published = []
    for event in events:
        verb, state = _RESERVATION_EVENTS[type(event)]
        published.append(event_for(events_pb2.ReservationChanged(reservation=reservation_message(reservation, state)),
                                   merchant_id=reservation.merchant_id, aggregate_id=reservation.id,
                                   aggregate_version=version, verb=verb))
    return published


def flash_sale_message(sale: FlashSale, now: datetime | None = None) -> catalog_pb2.FlashSale:
    currency = sale.currency
    return catalog_pb2.FlashSale(
        flash_sale_id=sale.id, title=sale.title, product_id=sale.product_id, sku_id=sale.sku_id,
        price=money(sale.price, currency), list_price=money(sale.sku.list_price, currency),
        total_units=sale.units, available_units=sale.available, reserved_units=sale.reserved,
        sold_units=sale.sold, per_member_limit=sale.per_member_limit,
        starts_at=timestamp(sale.starts_at), ends_at=timestamp(sale.ends_at), live_session_id=sale.live_session_id,
        state=FLASH_SALE_STATES[sale.state(now or utcnow())], version=sale.version,
        kind=catalog_pb2.ActivityKind.Value(f"ACTIVITY_KIND_{sale.kind}"))


def sku_detail_message(sale: FlashSale) -> catalog_pb2.SkuDetail:
    """The sale's SKU as it was when the sale was made; the sale itself decides whether
    it can be bought, so no product status is given."""
    sku, currency = sale.sku, sale.currency
    return catalog_pb2.SkuDetail(
        sku=catalog_pb2.Sku(
            sku_id=sale.sku_id, product_id=sale.product_id, code=sku.code, attributes=sku.attributes,
            list_price=money(sku.list_price, currency), available=sale.available, weight_g=sku.weight_g,
            tier_prices=[catalog_pb2.TierPrice(tier=tier, price=money(price, currency))
                         for tier, price in sku.tier_prices]),
        product_title=sku.product_title)
