"""The storage shapes of the sandbox provider's keyed records
(services/order/adapters/sandbox_ledger.py): the insert under the key is the check, a second
insert under it is a duplicate whatever its parameters, the first record (with its list of
receivers) reads back whole by `_id` for the comparison, and a payment's refunds are found by
its id."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
from siyu_kit.errors import FailedPrecondition

from services.order.adapters.sandbox_ledger import keyed

AT = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


def test_the_first_record_under_a_key_answers_every_repeat_and_another_request_is_refused(coll):
    asked = {"merchant_id": "mch_a", "provider_txn_id": "sbx_txn_1",
             "receivers": [{"kind": "MERCHANT_ID", "account": "acct0", "amount": 300},
                           {"kind": "MERCHANT_ID", "account": "acct1", "amount": 200}]}
    first = keyed(coll, "spl_1", asked, lambda: {"provider_order_id": "sbxps_1"}, AT)
    again = keyed(coll, "spl_1", asked, lambda: {"provider_order_id": "sbxps_2"}, AT)
    assert first["provider_order_id"] == again["provider_order_id"] == "sbxps_1"
    assert again["receivers"] == asked["receivers"]
    with pytest.raises(FailedPrecondition) as refused:
        keyed(coll, "spl_1", {**asked, "receivers": asked["receivers"][:1]}, lambda: {"provider_order_id": "x"}, AT)
    assert refused.value.reason == "PROVIDER_KEY_REUSED"
    assert coll.count_documents({}) == 1


def test_of_three_racing_callers_under_one_key_one_writes_and_all_answer_its_record(coll):
    start, answers = threading.Barrier(3), []

    def call(n: int) -> None:
        start.wait()
        answers.append(keyed(coll, "rfd_1", {"merchant_id": "mch_a", "payment_id": "pay_1", "amount": 700},
                             lambda: {"provider_refund_id": f"sbxrf_{n}"}, AT)["provider_refund_id"])

    threads = [threading.Thread(target=call, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(answers)) == 1 and len(answers) == 3
    assert [d["_id"] for d in coll.find({"payment_id": "pay_1"})] == ["rfd_1"]
