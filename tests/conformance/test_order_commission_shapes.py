"""The storage shape of an order's distribution: the referral written at insert, the whole
`commissions` array of sub-documents replaced by one $set on the order's version (when it
is paid, and again as refunds void it) beside the lines, and a line's eligibility flag as an
int, read back as they were written."""
from __future__ import annotations

from services.order.adapters.documents import commission_of, commissions_doc, referral_doc, referral_of
from services.order.domain.commissions import Commission, CommissionLevel, Referral, all_voided

REFERRAL = Referral(distributor_id="mem_D", distributor_rate_bp=1000, upline_distributor_id="mem_U",
                    upline_rate_bp=500, guide_store="S1", group_buy_commission=True)
OWED = (Commission("oln_1", CommissionLevel.LEVEL_1, "mem_D", 1000, 999, 99),
        Commission("oln_1", CommissionLevel.LEVEL_2, "mem_U", 500, 999, 49))


def test_the_referral_and_commissions_read_back_and_are_replaced_whole_on_the_version(coll):
    coll.insert_one({"_id": "ord_1", "merchant_id": "mch_a", "state": "PENDING_PAYMENT", "version": 1,
                     "referral": referral_doc(REFERRAL),
                     "lines": [{"line_id": "oln_1", "paid_amount": 999, "commission_eligible": 0}]})
    paid = coll.update_one({"_id": "ord_1", "merchant_id": "mch_a", "version": 1},
                           {"$set": {"state": "PAID", "commissions": commissions_doc(OWED)}, "$inc": {"version": 1}})
    assert paid.modified_count == 1
    stale = coll.update_one({"_id": "ord_1", "merchant_id": "mch_a", "version": 1},
                            {"$set": {"commissions": []}, "$inc": {"version": 1}})
    assert stale.modified_count == 0
    doc = coll.find_one({"_id": "ord_1"})
    assert referral_of(doc["referral"]) == REFERRAL
    assert tuple(commission_of(c) for c in doc["commissions"]) == OWED
    assert doc["lines"][0]["commission_eligible"] == 0
    coll.update_one({"_id": "ord_1", "merchant_id": "mch_a", "version": 2},
                    {"$set": {"commissions": commissions_doc(all_voided(OWED)),
                              "lines": [{"line_id": "oln_1", "paid_amount": 999, "refunded_amount": 999}]},
                     "$inc": {"version": 1}})
    doc = coll.find_one({"_id": "ord_1"})
    assert [c["voided"] for c in doc["commissions"]] == [99, 49] and doc["version"] == 3
    assert isinstance(doc["commissions"][0], dict) and referral_of(doc.get("absent")) is None
