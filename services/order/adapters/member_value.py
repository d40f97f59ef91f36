"""The member service's coupons and points, seen from the order service (its internal
RPCs QuoteCoupon, LockCoupon, UseCoupon, ReleaseCoupon, RestoreCoupon, GetPointsTerms,
HoldPoints, SpendHeldPoints, ReleaseHeldPoints, ReversePointsForRefund), and the value
hold intents placing writes before it asks (collection value_hold_intents)."""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

import grpc
from mongoengine import DateTimeField, Document, IntField, StringField
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError
from siyu.member.v1 import member_pb2, member_pb2_grpc

from siyu_kit import errors
from siyu_kit.cancellation import timeout
from siyu_kit.db import run_sync
from siyu_kit.grpc_server import details_of
from siyu_kit.protos import aware, epoch_ms, timestamp
from siyu_kit.money import MAX_AMOUNT

from services.order.application.ports import MemberValue, ValueHoldIntents
from services.order.domain.member_value import CouponLine, CouponQuote, OrderKind, PointsTerms, ValueHoldIntent

__all__ = ["MemberValueClient", "MongoValueHoldIntents", "ensure_indexes"]

TIMEOUT_S = 5.0
_KINDS = {OrderKind.NORMAL: member_pb2.COUPON_ORDER_KIND_NORMAL,
          OrderKind.FLASH_SALE: member_pb2.COUPON_ORDER_KIND_FLASH_SALE,
          OrderKind.GROUP_BUY: member_pb2.COUPON_ORDER_KIND_GROUP_BUY}


def _translate(error: grpc.aio.AioRpcError, what: str) -> errors.DomainError:
    """The member service's refusal passed on with its reason (COUPON_IN_USE,
    POINTS_INSUFFICIENT, …); anything else is UNAVAILABLE: it may have happened."""
    details = details_of(error.trailing_metadata())
    reason, violations = (details.reason, list(details.violations)) if details else ("", [])
    code = error.code()
    message = error.details() or what
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return errors.FailedPrecondition(message, reason=reason, violations=violations)
    if code == grpc.StatusCode.NOT_FOUND:
        return errors.NotFound(message, reason=reason, violations=violations)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return errors.InvalidArgument(message, reason=reason or "INVALID_FIELDS", violations=violations)
    return errors.Unavailable(f"the member service could not {what}; try again ({code.name})",
                              reason="MEMBER_UNAVAILABLE")


def _lines(lines: Sequence[CouponLine]) -> list[member_pb2.CouponLine]:
    return [member_pb2.CouponLine(sku_id=l.sku_id, product_id=l.product_id, category_path=list(l.category_path),
                                  unit_price=l.unit_price, quantity=l.quantity, amount=l.amount)
            for l in lines]


def _quote(coupon: member_pb2.MemberCoupon, discount: member_pb2.CouponDiscount) -> CouponQuote:
    return CouponQuote(coupon_id=coupon.coupon_id, name=coupon.name, amount=discount.amount,
                       shares=tuple(discount.shares))



def _capped(payable: int) -> int:
    """An order may add up to more than one amount's bound (50 lines of 999 units); the
    member service caps points at a share of the payable, and that share of the bound is
    already far more than any hold may take, so the bound stands in for larger payables."""
    return min(payable, MAX_AMOUNT)

class MemberValueClient(MemberValue):
    def __init__(self, channel: grpc.aio.Channel):
        self._stub = member_pb2_grpc.MemberServiceStub(channel)

    async def _call(self, method, request, what: str, deadline: float = TIMEOUT_S):
        try:
            return await method(request, timeout=deadline)
        except grpc.aio.AioRpcError as error:
            raise _translate(error, what) from error

    async def quote_coupon(self, member_id: str, coupon_id: str, lines: Sequence[CouponLine],
                           kind: OrderKind) -> CouponQuote | None:
        resp = await self._call(self._stub.QuoteCoupon, member_pb2.QuoteCouponRequest(
            member_id=member_id, coupon_id=coupon_id, lines=_lines(lines), order_kind=_KINDS[kind]),
            "quote the coupon")
        return _quote(resp.coupon, resp.discount) if resp.applied else None

    async def points_terms(self, member_id: str, payable: int) -> PointsTerms:
        resp = await self._call(self._stub.GetPointsTerms, member_pb2.GetPointsTermsRequest(
            member_id=member_id, payable=_capped(payable)), "read the points terms")
        s = resp.settings
        return PointsTerms(available=resp.available, max_usable=resp.max_usable, max_discount=resp.max_discount,
                           points_per_yuan=s.points_per_yuan or 100, min_points=s.min_points, step=s.step or 1)

    async def lock_coupon(self, member_id: str, coupon_id: str, order_id: str, lines: Sequence[CouponLine],
                          kind: OrderKind, pay_by: datetime) -> CouponQuote:
        resp = await self._call(self._stub.LockCoupon, member_pb2.LockCouponRequest(
            member_id=member_id, coupon_id=coupon_id, order_id=order_id, lines=_lines(lines),
            order_kind=_KINDS[kind], pay_by=timestamp(pay_by)), "lock the coupon", timeout(TIMEOUT_S))
        return _quote(resp.coupon, resp.discount)

    async def hold_points(self, member_id: str, order_id: str, points: int, payable: int,
                          as_price: bool = False) -> int:
        # A price hold checks no cap: its payable (0 for points only) is sent as at least 1.
        resp = await self._call(self._stub.HoldPoints, member_pb2.HoldPointsRequest(
            member_id=member_id, order_id=order_id, points=points, payable=max(_capped(payable), 1),
            as_price=as_price), "hold the points",
            timeout(TIMEOUT_S))
        return resp.discount

    async def use_coupon(self, coupon_id: str, order_id: str, order_amount: int) -> None:
        await self._call(self._stub.UseCoupon, member_pb2.UseCouponRequest(
            coupon_id=coupon_id, order_id=order_id, order_amount=order_amount), "use the coupon")

    async def release_coupon(self, coupon_id: str, order_id: str) -> None:
        await self._call(self._stub.ReleaseCoupon,
                         member_pb2.ReleaseCouponRequest(coupon_id=coupon_id, order_id=order_id),
                         "release the coupon")

    async def restore_coupon(self, coupon_id: str, order_id: str) -> None:
        await self._call(self._stub.RestoreCoupon,
                         member_pb2.RestoreCouponRequest(coupon_id=coupon_id, order_id=order_id),
                         "restore the coupon")

    async def spend_points(self, member_id: str, order_id: str) -> None:
        await self._call(self._stub.SpendHeldPoints,
                         member_pb2.SpendHeldPointsRequest(member_id=member_id, order_id=order_id),
                         "spend the held points")

    async def release_points(self, member_id: str, order_id: str) -> None:
        await self._call(self._stub.ReleaseHeldPoints,
                         member_pb2.ReleaseHeldPointsRequest(member_id=member_id, order_id=order_id),
                         "release the held points")

    async def reverse_points(self, member_id: str, order_id: str, refund_id: str, spent_to_return: int,
                             refunded_amount: int, paid_amount: int) -> None:
        await self._call(self._stub.ReversePointsForRefund, member_pb2.ReversePointsForRefundRequest(
            member_id=member_id, order_id=order_id, refund_id=refund_id, spent_points_to_return=spent_to_return,
            refunded_amount=refunded_amount, paid_amount=paid_amount), "reverse the refund's points")


# ---- value hold intents ---------------------------------------------------------------

class ValueHoldIntentDoc(Document):
    id = StringField(primary_key=True)  # the order id
    merchant_id = StringField(required=True)
    member_id = StringField(required=True)
    coupon_id = StringField()
    points = IntField(default=0)
    created_at = DateTimeField(required=True)
    # created_at in epoch ms, for the sweep's exact range; the sweeper's lease (0: none).
    created_ms = IntField(required=True)
    lease_ms = IntField(default=0)

    meta = {"collection": "value_hold_intents", "strict": False,
            "indexes": [{"fields": ["created_ms", "lease_ms"]}]}


def ensure_indexes() -> None:
    ValueHoldIntentDoc.ensure_indexes()


def _intents():
    return ValueHoldIntentDoc._get_collection()


def _intent_of(doc: dict) -> ValueHoldIntent:
    return ValueHoldIntent(order_id=doc["_id"], merchant_id=doc["merchant_id"], member_id=doc["member_id"],
                           coupon_id=doc.get("coupon_id") or "", points=doc.get("points") or 0,
                           created_at=aware(doc["created_at"]))


class MongoValueHoldIntents(ValueHoldIntents):
    async def add(self, intent: ValueHoldIntent) -> None:
        doc = {"_id": intent.order_id, "merchant_id": intent.merchant_id, "member_id": intent.member_id,
               "coupon_id": intent.coupon_id, "points": intent.points, "created_at": intent.created_at,
               "created_ms": epoch_ms(intent.created_at), "lease_ms": 0}

        def insert() -> None:
            try:
                _intents().insert_one(doc)
            except DuplicateKeyError:
                pass  # order ids are new per placing: a repeat of the same insert

        await run_sync(insert)

    async def remove(self, merchant_id: str, order_id: str) -> None:
        await run_sync(_intents().delete_one, {"_id": order_id, "merchant_id": merchant_id})

    async def claim_due(self, created_before: datetime, lease_until: datetime,
                        now: datetime) -> ValueHoldIntent | None:
        doc = await run_sync(_intents().find_one_and_update,
                             {"created_ms": {"$lt": epoch_ms(created_before)}, "lease_ms": {"$lt": epoch_ms(now)}},
                             {"$set": {"lease_ms": epoch_ms(lease_until)}}, return_document=ReturnDocument.AFTER)
        return _intent_of(doc) if doc else None
