"""Commissions and withdrawals over the member service's real gRPC port, MongoDB and NATS:
records and balances from crafted order events (late, twice, a clawback after a
withdrawal), the ledger equal to the balance, and 100 concurrent withdrawals on one
balance that never overdraw it."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
from siyu.common.v1 import common_pb2
from siyu.member.v1 import member_pb2 as pb, member_pb2_grpc

from siyu_kit.ids import new_id
from tests.support import database_fixture, metadata, new_merchant_id, reason, rpc_error, stub_fixture, wait_until
from tests.support.commissions import CommissionOrder
from tests.support.member import publish

stub = stub_fixture("member", member_pb2_grpc.MemberServiceStub)
db = database_fixture("member")


def as_member(mid, member_id):
    return metadata(mid, channel="MINI_PROGRAM", member_id=member_id)


def finance(mid):
    return metadata(mid, staff_id=new_id("stf"), roles=("FINANCE",))


def summary(stub, mid, who) -> pb.CommissionSummary:
    return stub.GetMyCommissionSummary(pb.GetMyCommissionSummaryRequest(), metadata=as_member(mid, who)).summary


def ledger_equals_balance(db, mid, who) -> None:
    account = db.commission_accounts.find_one({"merchant_id": mid, "beneficiary_id": who})
    entries = list(db.commission_entries.find({"merchant_id": mid, "beneficiary_id": who}))
    for k in ("available", "debt", "withdrawing", "withdrawn"):
        assert sum(e[k] for e in entries) == account[k], k
    assert account["available"] >= 0 and account["debt"] >= 0


async def test_order_events_move_records_and_balances_and_a_late_void_becomes_debt(stack, stub, db):
    mid = new_merchant_id()
    d1, d2 = new_id("mem"), new_id("mem")
    order = CommissionOrder(mid, new_id("mem"), 20_000, {1: (d1, 1000), 2: (d2, 500)})
    refunded_first = order.event("refunded", refunded=5_000)  # before paid arrives
    await publish(stack, refunded_first, order.event("paid"), order.event("paid"))
    wait_until(lambda: summary(stub, mid, d1).pending.amount == 1_500, message="pending from the refund's order")
    await publish(stack, order.event("completed", refunded=5_000), order.event("settled", refunded=5_000))
    wait_until(lambda: summary(stub, mid, d1).balance.available.amount == 1_500, message="settled")
    wait_until(lambda: summary(stub, mid, d2).balance.available.amount == 750, message="level 2 settled")
    listed = stub.ListMyCommissions(pb.ListMyCommissionsRequest(), metadata=as_member(mid, d1)).records
    assert [(r.state, r.amount.amount, r.voided.amount, r.level) for r in listed] == [
        (pb.COMMISSION_STATE_SETTLED, 2_000, 500, common_pb2.COMMISSION_LEVEL_1)]
    assert "***" in listed[0].buyer
    done = stub.RequestWithdrawal(pb.RequestWithdrawalRequest(amount=common_pb2.Money(amount=1_200),
                                                              idempotency_key="w1"), metadata=as_member(mid, d1))
    assert done.balance.available.amount == 300 and done.withdrawal.state == pb.WITHDRAWAL_STATE_REQUESTED
    await publish(stack, order.event("refunded_settled", refunded=20_000))
    wait_until(lambda: summary(stub, mid, d1).balance.debt.amount == 1_200, message="the clawback beyond the balance")
    s = summary(stub, mid, d1)
    assert (s.balance.available.amount, s.balance.withdrawing.amount, s.void.amount) == (0, 1_200, 2_000)
    # Rejected: the returned money pays the debt first.
    stub.RejectWithdrawal(pb.RejectWithdrawalRequest(withdrawal_id=done.withdrawal.withdrawal_id, reason="no"),
                          metadata=finance(mid))
    s = summary(stub, mid, d1)
    assert (s.balance.available.amount, s.balance.debt.amount, s.balance.withdrawing.amount) == (0, 0, 0)
    ledger_equals_balance(db, mid, d1)
    ledger_equals_balance(db, mid, d2)
    payable = stub.GetCommissionPayable(pb.GetCommissionPayableRequest(), metadata=finance(mid))
    assert {p.beneficiary_id for p in payable.payees} == {d1, d2} and payable.available.amount == 0


async def test_a_hundred_concurrent_withdrawals_never_overdraw_one_balance(stack, stub, db):
    mid = new_merchant_id()
    who = new_id("mem")
    order = CommissionOrder(mid, new_id("mem"), 300_000, {1: (who, 1000)})  # 30,000 fen of commission
    await publish(stack, order.event("settled"))
    wait_until(lambda: summary(stub, mid, who).balance.available.amount == 30_000, message="settled")

    def withdraw(i: int) -> int:
        try:
            stub.RequestWithdrawal(pb.RequestWithdrawalRequest(amount=common_pb2.Money(amount=700),
                                                               idempotency_key=f"k{i}"), metadata=as_member(mid, who))
            return 700
        except grpc.RpcError as error:
            assert error.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED), error
            return 0

    with ThreadPoolExecutor(max_workers=20) as pool:
        taken = sum(pool.map(withdraw, range(100)))
    s = summary(stub, mid, who).balance
    assert s.available.amount >= 0 and s.available.amount + s.withdrawing.amount == 30_000
    assert s.withdrawing.amount == taken and taken <= 30_000
    requested = db.withdrawals.count_documents({"merchant_id": mid, "state": "REQUESTED"})
    assert requested * 700 == taken
    ledger_equals_balance(db, mid, who)
    error = rpc_error(stub.RequestWithdrawal, pb.RequestWithdrawalRequest(amount=common_pb2.Money(amount=30_001),
                                                                          idempotency_key="too-much"),
                      metadata=as_member(mid, who))
    assert reason(error) in ("WITHDRAWAL_INSUFFICIENT", "WITHDRAWAL_DAILY_LIMIT")
