"""The commission and withdrawal RPCs of MemberService: proto in, use case, proto out."""
from __future__ import annotations

from siyu.member.v1 import member_pb2

from services.member.adapters import commission_messages as out
from services.member.application.commissions import CommissionLedger
from services.member.application.withdrawals import Withdrawals
from siyu_kit.errors import FieldViolation, InvalidArgument
from siyu_kit.protos import money


def _state(value: int, back: dict) -> str:
    if value == 0:
        return ""
    state = back.get(value)
    if state is None:
        raise InvalidArgument("the request has invalid fields", reason="INVALID_FIELDS",
                              violations=[FieldViolation("state", "a known state, or unspecified for all")])
    return state


class CommissionRpcs:
    commissions: CommissionLedger
    withdrawals: Withdrawals

    # ---- members -------------------------------------------------------------------------
    async def GetMyCommissionSummary(self, request, context):
        totals, book = await self.commissions.my_summary()
        return member_pb2.GetMyCommissionSummaryResponse(summary=out.summary_proto(totals, book))

    async def ListMyCommissions(self, request, context):
        records, token = await self.commissions.my_records(_state(request.state, out.STATE_BACK), request.page_size,
                                                           request.page_token)
        return member_pb2.ListMyCommissionsResponse(records=[out.record_proto(r) for r in records],
                                                    next_page_token=token)

    async def RequestWithdrawal(self, request, context):
        withdrawal, book = await self.withdrawals.request(request.amount.amount, request.idempotency_key)
        return member_pb2.RequestWithdrawalResponse(withdrawal=out.withdrawal_proto(withdrawal),
                                                    balance=out.balance_proto(book))

    async def ListMyWithdrawals(self, request, context):
        rows, token = await self.withdrawals.my_withdrawals(request.page_size, request.page_token)
        return member_pb2.ListMyWithdrawalsResponse(withdrawals=[out.withdrawal_proto(w) for w in rows],
                                                    next_page_token=token)

    # ---- finance -------------------------------------------------------------------------
    async def GetWithdrawalSettings(self, request, context):
        settings, version = await self.withdrawals.settings()
        return member_pb2.GetWithdrawalSettingsResponse(settings=out.settings_proto(settings), version=version)

    async def UpdateWithdrawalSettings(self, request, context):
        settings, version = await self.withdrawals.update_settings(out.settings_of(request.settings),
                                                                   request.expected_version)
        return member_pb2.UpdateWithdrawalSettingsResponse(settings=out.settings_proto(settings), version=version)

    async def ApproveWithdrawal(self, request, context):
        withdrawal = await self.withdrawals.approve(request.withdrawal_id)
        return member_pb2.ApproveWithdrawalResponse(withdrawal=out.withdrawal_proto(withdrawal))

    async def RejectWithdrawal(self, request, context):
        withdrawal = await self.withdrawals.reject(request.withdrawal_id, request.reason)
        return member_pb2.RejectWithdrawalResponse(withdrawal=out.withdrawal_proto(withdrawal))

    async def ListWithdrawals(self, request, context):
        rows, token = await self.withdrawals.list(_state(request.state, out.WITHDRAWAL_STATE_BACK),
                                                  request.page_size, request.page_token)
        return member_pb2.ListWithdrawalsResponse(withdrawals=[out.withdrawal_proto(w) for w in rows],
                                                  next_page_token=token)

    async def GetCommissionPayable(self, request, context):
        balances, states, payees, token = await self.commissions.payable(request.page_size, request.page_token)
        return member_pb2.GetCommissionPayableResponse(
            available=money(balances.available), withdrawing=money(balances.withdrawing), frozen=money(states.frozen),
            pending=money(states.pending), debt=money(balances.debt),
            payees=[member_pb2.CommissionPayee(beneficiary_id=b.beneficiary_id, balance=out.balance_proto(b))
                    for b in payees],
            next_page_token=token)

    async def GetStoredValueLiability(self, request, context):
        liability = await self.commissions.stored_value_liability()
        return member_pb2.GetStoredValueLiabilityResponse(
            principal=money(liability.principal), bonus=money(liability.bonus),
            total=money(liability.principal + liability.bonus), accounts=liability.accounts)
