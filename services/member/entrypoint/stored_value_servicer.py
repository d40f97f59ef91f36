"""The stored-value RPCs of MemberService: proto in, use case, proto out."""
from __future__ import annotations

from siyu.member.v1 import member_pb2

from siyu_kit.errors import FieldViolation, InvalidArgument

from services.member.adapters import stored_value_messages as out
from services.member.application.stored_value import StoredValue


class StoredValueRpcs:
    stored_value: StoredValue

    # ---- staff ---------------------------------------------------------------------------
    async def CreateRechargePackage(self, request, context):
        package = await self.stored_value.create_package(request.name, request.price, request.bonus,
                                                         request.idempotency_key)
        return member_pb2.CreateRechargePackageResponse(package=out.package_proto(package))

    async def SetRechargePackageState(self, request, context):
        state = out.PACKAGE_STATE_BACK.get(request.state)
        if state is None:
            raise InvalidArgument("the request has invalid fields", reason="INVALID_FIELDS",
                                  violations=[FieldViolation("state", "ACTIVE or INACTIVE")])
        package = await self.stored_value.set_package_state(request.package_id, state)
        return member_pb2.SetRechargePackageStateResponse(package=out.package_proto(package))

    async def ListRechargePackages(self, request, context):
        packages, token = await self.stored_value.list_packages(request.page_size, request.page_token)
        return member_pb2.ListRechargePackagesResponse(packages=[out.package_proto(p) for p in packages],
                                                       next_page_token=token)

    async def GetMemberBalance(self, request, context):
        balance, recharges = await self.stored_value.member_balance(request.member_id)
        return member_pb2.GetMemberBalanceResponse(balance=out.balance_proto(balance),
                                                   recharges=[out.recharge_proto(r) for r in recharges])

    async def ListMemberBalanceHistory(self, request, context):
        entries, token = await self.stored_value.member_history(request.member_id, request.page_size,
                                                                request.page_token)
        return member_pb2.ListMemberBalanceHistoryResponse(entries=[out.entry_proto(e) for e in entries],
                                                           next_page_token=token)

    async def RefundRecharge(self, request, context):
        recharge, balance = await self.stored_value.refund_recharge(request.recharge_id, request.reason,
                                                                    request.idempotency_key)
        return member_pb2.RefundRechargeResponse(recharge=out.recharge_proto(recharge),
                                                 balance=out.balance_proto(balance))

    # ---- members -------------------------------------------------------------------------
    async def GetMyBalance(self, request, context):
        balance, packages = await self.stored_value.my_balance()
        return member_pb2.GetMyBalanceResponse(balance=out.balance_proto(balance),
                                               packages=[out.package_proto(p) for p in packages])

    async def ListMyBalanceHistory(self, request, context):
        entries, token = await self.stored_value.my_history(request.page_size, request.page_token)
        return member_pb2.ListMyBalanceHistoryResponse(entries=[out.entry_proto(e) for e in entries],
                                                       next_page_token=token)

    # ---- the order service ------------------------------------------------------------------
    async def GetRechargePackage(self, request, context):
        package = await self.stored_value.get_package(request.package_id)
        return member_pb2.GetRechargePackageResponse(package=out.package_proto(package))

    async def HoldBalance(self, request, context):
        part, applied = await self.stored_value.hold(request.member_id, request.order_id, request.max_amount)
        return member_pb2.HoldBalanceResponse(held=part.amount, principal=part.principal, bonus=part.bonus,
                                              applied=applied)

    async def CaptureBalance(self, request, context):
        spent, applied = await self.stored_value.capture(request.member_id, request.order_id)
        return member_pb2.CaptureBalanceResponse(spent=spent, applied=applied)

    async def ReleaseBalance(self, request, context):
        released, applied = await self.stored_value.release(request.member_id, request.order_id)
        return member_pb2.ReleaseBalanceResponse(released=released, applied=applied)

    async def RefundToBalance(self, request, context):
        part, applied = await self.stored_value.refund_to_balance(request.member_id, request.order_id,
                                                                  request.refund_id, request.amount)
        return member_pb2.RefundToBalanceResponse(principal=part.principal, bonus=part.bonus, applied=applied)
