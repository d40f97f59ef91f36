"""The shape of a login taking over an identity of a member being erased
(services/member/adapters/repositories.py `take_over`): one update on the identity's key
and the old member id; a second taker, or an identity naming another member, changes nothing."""
from __future__ import annotations

from services.member.adapters.repositories import take_over, unionid_of
from tests.support import new_merchant_id


def test_an_identity_is_taken_over_once_from_the_member_it_names(coll):
    m = new_merchant_id()
    coll.create_index([("merchant_id", 1), ("unionid", 1)], unique=True)
    coll.insert_one({"_id": "idn_1", "merchant_id": m, "unionid": "u1", "member_id": "mem_old"})
    key = {"merchant_id": m, "unionid": "u1"}
    assert take_over(coll, key, "mem_old", "mem_new")
    assert not take_over(coll, key, "mem_old", "mem_other")
    assert not take_over(coll, {"merchant_id": new_merchant_id(), "unionid": "u1"}, "mem_new", "mem_x")
    assert [d["member_id"] for d in coll.find(key)] == ["mem_new"]



def test_the_unionid_of_a_member_is_found_by_merchant_and_member(coll):
    m = new_merchant_id()
    coll.insert_one({"_id": "idn_2", "merchant_id": m, "unionid": "u2", "member_id": "mem_2"})
    assert unionid_of(coll, m, "mem_2") == "u2"
    assert unionid_of(coll, new_merchant_id(), "mem_2") is None
