"""Phones stored in clear before verified phones were sealed, on the real service and
MongoDB: the profile shows them masked, an OWNER's reveal reads them (audited), and the
member-phone-seal backfill moves each into the sealed phone book under its keyed hash and
removes the clear copy; the reveal then reads the sealed one."""
from __future__ import annotations

import uuid

import grpc
import pytest
from siyu.member.v1 import member_pb2 as pb, member_pb2_grpc

from services.member.adapters.wechat_store import index_key, lookup_key
from services.member.domain.wechat import phone_index
from siyu_kit.config import load
from siyu_kit.ids import new_id
from siyu_kit.sealing import Sealer
from tests.support import database_fixture, metadata, new_merchant_id, stub_fixture, wait_until
from tests.support.member import login

stub = stub_fixture("member", member_pb2_grpc.MemberServiceStub)
db = database_fixture("member")


def test_a_clear_phone_is_read_masked_revealed_audited_and_sealed_by_the_backfill(stub, db):
    merchant_id = new_merchant_id()
    member_id = login(stub, merchant_id, "u-" + uuid.uuid4().hex[:10]).member.member_id
    phone = "137" + str(uuid.uuid4().int)[:8]
    db.members.update_one({"_id": member_id}, {"$set": {"phone": phone, "phone_key": f"{merchant_id}:{phone}"}})
    me = metadata(merchant_id, channel="H5", member_id=member_id)
    masked = f"{phone[:3]}****{phone[-4:]}"
    assert stub.GetMyProfile(pb.GetMyProfileRequest(), metadata=me).profile.phone_masked == masked
    owner = metadata(merchant_id, staff_id=new_id("stf"), roles=("OWNER",))
    reveal = pb.RevealMemberPhoneRequest(member_id=member_id, reason="call about a parcel")
    assert stub.RevealMemberPhone(reveal, metadata=owner).phone == phone
    with pytest.raises(grpc.RpcError) as denied:
        stub.RevealMemberPhone(reveal, metadata=metadata(merchant_id, staff_id=new_id("stf"), roles=("GUIDE",)))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    audit = list(db.audit_entries.find({"merchant_id": merchant_id, "action": "MEMBER_PHONE_REVEALED"}))
    assert [(a["target_id"], a["after"]["reason"]) for a in audit] == [(member_id, "call about a parcel")]

    db.backfills.delete_many({"_id": "member-phone-seal"})
    settings = load("member")
    hashed = phone_index(index_key(lookup_key(settings.lookup_key)), merchant_id, phone)
    wait_until(lambda: db.member_phones.find_one({"_id": hashed}) is not None
               and "phone" not in db.members.find_one({"_id": member_id}),
               timeout=40, interval=0.1, message="the phone sealed")
    sealed = db.member_phones.find_one({"_id": hashed})
    assert sealed["member_id"] == member_id and phone not in str(sealed)
    assert Sealer.from_setting(settings.data_key).open(sealed["phone_sealed"], f"phone:{merchant_id}") == phone
    doc = db.members.find_one({"_id": member_id})
    assert "phone_key" not in doc and doc["phone_suffix"] == phone[-4:]
    assert stub.RevealMemberPhone(reveal, metadata=owner).phone == phone
    assert stub.GetMyProfile(pb.GetMyProfileRequest(), metadata=me).profile.phone_masked == masked
