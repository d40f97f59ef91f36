"""The member service's stored value, seen from the order service: recharge packages,
and the balance an order holds, spends, gives back and is refunded to."""
from __future__ import annotations

import grpc
from siyu.member.v1 import member_pb2, member_pb2_grpc

from siyu_kit import errors
from siyu_kit.db import run_sync
from siyu_kit.grpc_server import details_of
from siyu_kit.repository import save_change

from services.order.adapters.documents import OrderDoc
from services.order.adapters.tender_docs import stored_value_doc
from services.order.application.ports import RechargePackage
from services.order.domain.orders import Order

TIMEOUT_S = 5.0
# The member service's words, and the order service's for what they mean here.
MEMBER_PACKAGE_NOT_FOUND = "RECHARGE_PACKAGE_NOT_FOUND"
MEMBER_HOLD_ENDED = "BALANCE_HOLD_ENDED"
PACKAGE_NOT_OFFERED = "RECHARGE_PACKAGE_NOT_OFFERED"
HOLD_GIVEN_BACK = "BALANCE_HOLD_GIVEN_BACK"
UNAVAILABLE = "BALANCE_UNAVAILABLE"


def _translate(error: grpc.aio.AioRpcError, what: str) -> errors.DomainError:
    details = details_of(error.trailing_metadata())
    reason = details.reason if details else ""
    code = error.code()
    if code == grpc.StatusCode.NOT_FOUND and reason == MEMBER_PACKAGE_NOT_FOUND:
        return errors.NotFound(error.details() or "no such recharge package", reason=PACKAGE_NOT_OFFERED)
    if code == grpc.StatusCode.FAILED_PRECONDITION and reason == MEMBER_HOLD_ENDED:
        return errors.FailedPrecondition(error.details() or "the order's balance hold ended", reason=HOLD_GIVEN_BACK)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return errors.FailedPrecondition(f"the member's balance refused to {what} ({reason or code.name})",
                                         reason=UNAVAILABLE)
    return errors.Unavailable(f"the member's balance could not {what}; try again ({code.name})", reason=UNAVAILABLE)


class MemberBalanceClient:
    """The RechargePackages and Balances ports over the member service's internal RPCs."""

    def __init__(self, channel: grpc.aio.Channel):
        self._stub = member_pb2_grpc.MemberServiceStub(channel)

    async def _call(self, method: str, request, what: str):
        try:
            return await getattr(self._stub, method)(request, timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            raise _translate(error, what) from error

    async def active(self, package_id: str) -> RechargePackage:
        resp = await self._call("GetRechargePackage", member_pb2.GetRechargePackageRequest(package_id=package_id),
                                "read the recharge package")
        p = resp.package
        if p.state != member_pb2.RECHARGE_PACKAGE_STATE_ACTIVE:
            raise errors.NotFound(f"recharge package {package_id} is not on offer", reason=PACKAGE_NOT_OFFERED)
        return RechargePackage(package_id=p.package_id, name=p.name, price=p.price, bonus=p.bonus)

    async def hold(self, member_id: str, order_id: str, max_amount: int) -> int:
        resp = await self._call("HoldBalance", member_pb2.HoldBalanceRequest(
            member_id=member_id, order_id=order_id, max_amount=max_amount), "hold the balance")
        return resp.held

    async def capture(self, member_id: str, order_id: str) -> int:
        resp = await self._call("CaptureBalance", member_pb2.CaptureBalanceRequest(
            member_id=member_id, order_id=order_id), "spend the held balance")
        return resp.spent

    async def release(self, member_id: str, order_id: str) -> int:
        resp = await self._call("ReleaseBalance", member_pb2.ReleaseBalanceRequest(
            member_id=member_id, order_id=order_id), "release the held balance")
        return resp.released

    async def refund_to_balance(self, member_id: str, order_id: str, refund_id: str, amount: int) -> None:
        await self._call("RefundToBalance", member_pb2.RefundToBalanceRequest(
            member_id=member_id, order_id=order_id, refund_id=refund_id, amount=amount), "take the refund")


class MongoOrderTenders:
    """The OrderTenders port: the order's stored-value facts written alone, on its version."""

    @staticmethod
    def _save(order: Order) -> None:
        save_change(OrderDoc._get_collection(), {"_id": order.id, "merchant_id": order.merchant_id},
                    {"$set": {"stored_value": stored_value_doc(order.stored_value)}}, version=order.version)

    async def save_tender(self, order: Order) -> None:
        await run_sync(self._save, order)
        order.version += 1
