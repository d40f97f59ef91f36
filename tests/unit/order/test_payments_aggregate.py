"""The Payment aggregate: PENDING → SUCCEEDED → REFUNDED, failures that leave it pending,
the reconcile lease, and the event a refund records."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from siyu_kit.aggregate import Move

from services.order.domain.payments import (MACHINE, RECONCILE_AFTER, Payment, PaymentRefunded, PaymentState)

NOW = datetime(2026, 3, 1, tzinfo=timezone.utc)
NOW_MS = int(NOW.timestamp() * 1000)


def pending() -> Payment:
    return Payment.start("pay_1", merchant_id="mch_1", member_id="mem_1", order_id="ord_1", idempotency_key="k",
                         amount=1000, currency="CNY", now=NOW)


def test_the_state_machine_moves_one_way():
    assert MACHINE.decide(PaymentState.PENDING, PaymentState.SUCCEEDED) is Move.APPLY
    assert MACHINE.decide(PaymentState.SUCCEEDED, PaymentState.REFUNDED) is Move.APPLY
    assert MACHINE.decide(PaymentState.PENDING, PaymentState.REFUNDED) is Move.REFUSE
    assert MACHINE.decide(PaymentState.REFUNDED, PaymentState.SUCCEEDED) is Move.REFUSE
    assert MACHINE.is_final(PaymentState.REFUNDED)


def test_start_is_pending_at_version_one():
    p = pending()
    assert (p.state, p.version, p.open, p.failures, p.refund_reason) == (PaymentState.PENDING, 1, False, 0, "")
    assert p.pull_events() == []


def test_success_opens_the_payment_for_the_reconcile_job():
    p = pending()
    assert p.succeed("txn_1", NOW)
    assert (p.state, p.provider_txn_id, p.succeeded_at, p.open) == (PaymentState.SUCCEEDED, "txn_1", NOW, True)
    assert p.reconcile_ms == NOW_MS + int(RECONCILE_AFTER.total_seconds() * 1000)
    assert not p.succeed("txn_2", NOW) and p.provider_txn_id == "txn_1"
    assert p.pull_events() == []


def test_failures_count_once_per_transaction_and_only_while_pending():
    p = pending()
    assert p.fail("t1", NOW) and p.failures == 1 and p.last_failure.provider_txn_id == "t1"
    assert not p.fail("t1", NOW) and p.failures == 1
    assert p.fail("t2", NOW) and p.failures == 2
    p.succeed("t3", NOW)
    assert not p.fail("t4", NOW) and p.failures == 2


def test_close_is_once():
    p = pending()
    p.succeed("t", NOW)
    assert p.close() and not p.open
    assert not p.close()


def test_a_refund_closes_the_payment_and_records_its_reason():
    p = pending()
    assert not p.refunded("rf_1", 1000, "ORDER_EXPIRED", NOW)  # not SUCCEEDED yet
    p.succeed("t", NOW)
    assert p.refunded("rf_1", 1000, "ORDER_EXPIRED", NOW)
    assert (p.state, p.open, p.refunded_at, p.refund_reason) == (PaymentState.REFUNDED, False, NOW, "ORDER_EXPIRED")
    assert p.was_auto_refunded
    assert p.pull_events() == [PaymentRefunded(reason="ORDER_EXPIRED", occurred_at=NOW)]
    assert not p.refunded("rf_2", 1000, "ORDER_EXPIRED", NOW) and p.refund.provider_refund_id == "rf_1"


@pytest.mark.parametrize("reason,auto", [("ORDER_CANCELLED", True), ("ORDER_ALREADY_PAID", True),
                                         ("STOCK_UNAVAILABLE", False)])
def test_only_money_the_order_never_took_counts_as_auto_refunded(reason, auto):
    p = pending()
    p.succeed("t", NOW)
    p.refunded("rf", 1000, reason, NOW)
    assert p.was_auto_refunded is auto


def test_the_reconcile_lease_moves_the_reconcile_time_and_returns_the_one_read():
    p = pending()
    p.succeed("t", NOW)
    seen = p.reconcile_ms
    assert p.take_for_reconcile(NOW + timedelta(seconds=30)) == seen
    assert p.reconcile_ms == NOW_MS + 30_000
