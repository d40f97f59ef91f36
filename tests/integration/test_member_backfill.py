"""The member service's backfills on the real service and MongoDB: members stored before
their growth and phone suffix were kept beside them get both, so the staff's list shows
their tier and finds them by tier and phone suffix; each backfill ends done."""
from __future__ import annotations

import uuid

from siyu.member.v1 import member_pb2 as pb, member_pb2_grpc

from siyu_kit.config import load
from siyu_kit.ids import new_id
from siyu_kit.protos import utcnow
from siyu_kit.sealing import Sealer
from tests.support import database_fixture, metadata, new_merchant_id, stub_fixture, wait_until
from tests.support.member import login

stub = stub_fixture("member", member_pb2_grpc.MemberServiceStub)
db = database_fixture("member")


def test_members_from_before_get_their_growth_and_phone_suffix(stub, db):
    merchant_id = new_merchant_id()
    old_buyer = login(stub, merchant_id, "u-" + uuid.uuid4().hex[:10]).member.member_id
    old_phone_owner = login(stub, merchant_id, "u-" + uuid.uuid4().hex[:10]).member.member_id
    # As stored before: no growth on the member, though the ledger holds some ...
    db.members.update_one({"_id": old_buyer}, {"$unset": {"growth": ""}})
    for growth in (400, 1_600):
        db.points_entries.insert_one({"_id": new_id("pte"), "merchant_id": merchant_id, "member_id": old_buyer,
                                      "source": "ORDER_PAID", "source_id": new_id("ord"), "points": growth,
                                      "growth": growth, "frozen": 0, "created_at": utcnow()})
    # ... and a bound phone without its digits beside the member.
    phone = "136" + str(uuid.uuid4().int)[:8]
    sealer = Sealer.from_setting(load("member").data_key)
    db.member_phones.insert_one({"_id": uuid.uuid4().hex, "merchant_id": merchant_id, "member_id": old_phone_owner,
                                 "phone_sealed": sealer.seal(phone, f"phone:{merchant_id}"), "created_at": utcnow()})
    staff = metadata(merchant_id, staff_id=new_id("stf"), roles=("OPERATOR",))
    silver = pb.ListMembersRequest(tier=pb.TIER_SILVER)
    assert [m.member_id for m in stub.ListMembers(silver, metadata=staff).members] == []

    # The backfills ran at start-up; start them over, as for data written by an older version.
    db.backfills.delete_many({})
    wait_until(lambda: db.members.find_one({"_id": old_buyer}).get("growth") == 2_000 and
               db.members.find_one({"_id": old_phone_owner}).get("phone_suffix") == phone[-4:],
               timeout=40, interval=0.1, message="the backfills")
    found = stub.ListMembers(silver, metadata=staff).members
    assert [(m.member_id, m.growth_value) for m in found] == [(old_buyer, 2_000)]
    by_phone = stub.ListMembers(pb.ListMembersRequest(phone_suffix=phone[-4:]), metadata=staff).members
    assert [(m.member_id, m.phone_masked) for m in by_phone] == [(old_phone_owner, f"{phone[:3]}****{phone[-4:]}")]
    wait_until(lambda: db.backfills.count_documents({"done": 1}) == 3, timeout=20, interval=0.1,
               message="every backfill done (growth, phone suffix, phone seal)")
    # done for good: a member stored the old way now stays as it is (new code writes the fields itself)
    assert db.members.find_one({"_id": old_buyer})["growth"] == 2_000
