"""Points mall items and requests ⇄ protos."""
from __future__ import annotations

from datetime import datetime, timezone

from siyu.order.v1 import order_pb2

from siyu_kit.protos import timestamp

from services.order.application.points_mall import ItemDraft, ItemView, PlacePointsMallOrderInput


def _time(message, name: str) -> datetime | None:
    return getattr(message, name).ToDatetime(tzinfo=timezone.utc) if message.HasField(name) else None


def item_proto(view: ItemView) -> order_pb2.PointsMallItem:
    item = view.item
    return order_pb2.PointsMallItem(
        item_id=item.id, title=item.title, product_id=item.product_id, sku_id=item.sku_id,
        points_price=item.points_price, cash_price=item.cash_price, list_price=item.list_price,
        total_units=item.total_units, units_left=view.units_left, per_member_limit=item.per_member_limit,
        starts_at=timestamp(item.starts_at), ends_at=timestamp(item.ends_at),
        state=order_pb2.PointsMallItemState.Value(f"POINTS_MALL_ITEM_STATE_{item.state.value}"),
        version=item.version, created_at=timestamp(item.created_at))


def draft_of(request: order_pb2.CreatePointsMallItemRequest) -> ItemDraft:
    return ItemDraft(sku_id=request.sku_id, title=request.title, points_price=request.points_price,
                     cash_price=request.cash_price, units=request.units, per_member_limit=request.per_member_limit,
                     starts_at=_time(request, "starts_at"), ends_at=_time(request, "ends_at"))


def place_of(request: order_pb2.PlacePointsMallOrderRequest, attribution: dict) -> PlacePointsMallOrderInput:
    return PlacePointsMallOrderInput(item_id=request.item_id, idempotency_key=request.idempotency_key,
                                     quantity=request.quantity, address_id=request.address_id,
                                     attribution=attribution, remark=request.remark)
