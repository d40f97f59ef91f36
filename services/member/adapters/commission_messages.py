"""Protobuf views of commission records, balances and withdrawals, and the order events
read as the commissions they carry."""
from __future__ import annotations

from datetime import timezone

from siyu.common.v1 import common_pb2
from siyu.member.v1 import member_pb2
from siyu.order.v1 import order_pb2

from services.member.application.commission_ports import BalanceTotals, StateTotals
from services.member.domain.commissions import (COMMUNITY_LEADER, FROZEN, GUIDE, LEVEL_1, LEVEL_2, PENDING, SETTLED, VOID,
                                                CommissionBook, CommissionLine, CommissionRecord, OrderCommissions,
                                                mask, stage_of)
from services.member.domain.withdrawals import (FAILED, PAID, PAYING, REJECTED, REQUESTED, Withdrawal,
                                                WithdrawalSettings)
from siyu_kit.protos import money, timestamp

LEVEL = {common_pb2.COMMISSION_LEVEL_1: LEVEL_1, common_pb2.COMMISSION_LEVEL_2: LEVEL_2,
         common_pb2.COMMISSION_LEVEL_GUIDE: GUIDE, common_pb2.COMMISSION_LEVEL_COMMUNITY_LEADER: COMMUNITY_LEADER}
LEVEL_BACK = {name: number for number, name in LEVEL.items()}
STATE = {PENDING: member_pb2.COMMISSION_STATE_PENDING, FROZEN: member_pb2.COMMISSION_STATE_FROZEN,
         SETTLED: member_pb2.COMMISSION_STATE_SETTLED, VOID: member_pb2.COMMISSION_STATE_VOID}
STATE_BACK = {number: name for name, number in STATE.items()}
WITHDRAWAL_STATE = {REQUESTED: member_pb2.WITHDRAWAL_STATE_REQUESTED, PAYING: member_pb2.WITHDRAWAL_STATE_PAYING,
                    PAID: member_pb2.WITHDRAWAL_STATE_PAID, REJECTED: member_pb2.WITHDRAWAL_STATE_REJECTED,
                    FAILED: member_pb2.WITHDRAWAL_STATE_FAILED}
WITHDRAWAL_STATE_BACK = {number: name for name, number in WITHDRAWAL_STATE.items()}


class NotCommission(ValueError):
    """The event's order cannot be read as commissions (a poison message)."""


def order_commissions(merchant_id: str, order: order_pb2.Order, at, settled: bool = False) -> OrderCommissions | None:
    """The order's commissions and what its state means for them; None when it has none
    or is in no commission stage (not paid, cancelled)."""
    if not order.commissions:
        return None
    if not (merchant_id and order.order_id):
        raise NotCommission("an order event needs merchant and order")
    if settled or order.HasField("settled_at"):
        stage = SETTLED
    else:
        stage = stage_of(order_pb2.OrderState.Name(order.state).removeprefix("ORDER_STATE_"))
        if stage is None:
            return None
    lines = []
    for c in order.commissions:
        level = LEVEL.get(c.level)
        amount, voided = c.amount.amount, c.voided.amount
        if level is None or not c.line_id or not c.beneficiary_id or amount < 0 or voided < 0:
            raise NotCommission(f"order {order.order_id} carries a commission that cannot be read")
        lines.append(CommissionLine(line_id=c.line_id, level=level, beneficiary_id=c.beneficiary_id,
                                    rate_bp=c.rate_bp, base=c.base.amount, amount=amount, voided=voided))
    return OrderCommissions(merchant_id=merchant_id, order_id=order.order_id, buyer_id=order.member_id, stage=stage,
                            lines=tuple(lines), at=at.ToDatetime(tzinfo=timezone.utc))


def record_proto(r: CommissionRecord) -> member_pb2.CommissionRecord:
    return member_pb2.CommissionRecord(
        order_id=r.order_id, line_id=r.line_id, level=LEVEL_BACK[r.level], beneficiary_id=r.beneficiary_id,
        rate_bp=r.rate_bp, base=money(r.base), amount=money(r.amount), voided=money(r.voided), state=STATE[r.state],
        buyer=mask(r.buyer_id), created_at=timestamp(r.created_at), updated_at=timestamp(r.updated_at))


def balance_proto(b: CommissionBook | BalanceTotals) -> member_pb2.CommissionBalance:
    return member_pb2.CommissionBalance(available=money(b.available), withdrawing=money(b.withdrawing),
                                        withdrawn=money(b.withdrawn), debt=money(b.debt))


def summary_proto(totals: StateTotals, book: CommissionBook) -> member_pb2.CommissionSummary:
    return member_pb2.CommissionSummary(pending=money(totals.pending), frozen=money(totals.frozen),
                                        settled=money(totals.settled), void=money(totals.void),
                                        balance=balance_proto(book))


def withdrawal_proto(w: Withdrawal) -> member_pb2.Withdrawal:
    return member_pb2.Withdrawal(
        withdrawal_id=w.id, member_id=w.member_id, amount=money(w.amount), fee=money(w.fee), payout=money(w.payout),
        state=WITHDRAWAL_STATE.get(w.state, member_pb2.WITHDRAWAL_STATE_UNSPECIFIED), reason=w.reason,
        provider_transfer_id=w.provider_transfer_id, created_at=timestamp(w.created_at),
        updated_at=timestamp(w.updated_at))


def settings_proto(s: WithdrawalSettings) -> member_pb2.WithdrawalSettings:
    return member_pb2.WithdrawalSettings(min_amount=s.min_amount, fee_bp=s.fee_bp, daily_limit=s.daily_limit)


def settings_of(m: member_pb2.WithdrawalSettings) -> WithdrawalSettings:
    return WithdrawalSettings(min_amount=m.min_amount, fee_bp=m.fee_bp, daily_limit=m.daily_limit)
