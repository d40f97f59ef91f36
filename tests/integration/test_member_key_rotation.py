"""Rotating the data key (SIYU_DATA_KEY) on the real member service: a new current key,
the old one kept for opening. Phones bound before are still found (their look-up keys
with SIYU_LOOKUP_KEY, which did not move) and still open; new values seal with the new
key; nothing is re-indexed."""
from __future__ import annotations

import uuid

import grpc
import httpx
import pytest
from siyu.member.v1 import member_pb2 as pb, member_pb2_grpc

from siyu_kit.config import DEV_DATA_KEY
from siyu_kit.ids import new_id
from siyu_kit.sealing import new_key
from tests.support import channel, database_fixture, metadata, new_merchant_id, reason, rpc_error
from tests.support.member import login

db = database_fixture("member")


def _restart_member(stack, extra_env: dict[str, str]) -> None:
    stack.stop("member")
    stack.start_service("member", extra_env=extra_env)
    stack.wait_services_serving(["member"], timeout=60)
    if "gateway" in stack.procs:
        stack.wait_ready(timeout=60)


@pytest.fixture(scope="module")
def rotate(stack):
    """Call it to restart the member service with a new current data key (the old one
    kept); the service is as before afterwards."""
    old = stack.service_env("member").get("SIYU_DATA_KEY", DEV_DATA_KEY)
    done = []

    def rotate_now() -> None:
        _restart_member(stack, {"SIYU_DATA_KEY": f"k2:{new_key()},{old}"})
        done.append(True)

    yield rotate_now
    if done:
        _restart_member(stack, {})


def new_phone() -> str:
    return "137" + str(uuid.uuid4().int)[:8]


def bind_by_sms(stack, stub, me, phone: str):
    stub.SendPhoneCode(pb.SendPhoneCodeRequest(phone=phone), metadata=me)
    messages = httpx.get(stack.wechat_url + "/_standin/sms", params={"phone": phone}).json()["messages"]
    code = "".join(ch for ch in messages[-1] if ch.isdigit())[:6]
    return stub.BindSmsPhone(pb.BindSmsPhoneRequest(phone=phone, code=code), metadata=me)


def test_a_bound_phone_is_still_found_and_opened_after_the_data_key_rotates(stack, db, rotate):
    merchant_id = new_merchant_id()
    phone = new_phone()
    with channel(stack, "member") as ch:
        stub = member_pb2_grpc.MemberServiceStub(ch)
        first = login(stub, merchant_id, "u-" + uuid.uuid4().hex[:10]).member.member_id
        me = metadata(merchant_id, channel="H5", member_id=first)
        assert bind_by_sms(stack, stub, me, phone).member.phone_masked == f"{phone[:3]}****{phone[-4:]}"
        address = stub.CreateAddress(pb.CreateAddressRequest(
            idempotency_key="a", recipient="张三", phone=phone, province_code="440000", city_code="440300",
            district_code="440305", detail="科技园 1 号"), metadata=me).address
    before = db.member_phones.find_one({"merchant_id": merchant_id, "member_id": first})
    assert before["phone_sealed"].split(".")[1] != "k2"

    rotate()

    with channel(stack, "member") as ch:
        stub = member_pb2_grpc.MemberServiceStub(ch)
        # sealed before: still opens
        assert stub.GetMe(pb.GetMeRequest(), metadata=me).member.phone_masked == f"{phone[:3]}****{phone[-4:]}"
        shipping = stub.GetShippingAddress(pb.GetShippingAddressRequest(member_id=first, address_id=address.address_id),
                                           metadata=metadata(merchant_id, service="order"))
        assert shipping.phone == phone
        # looked up: the phone still resolves to its member, for another member and for the holder
        other = login(stub, merchant_id, "u-" + uuid.uuid4().hex[:10]).member.member_id
        taken = rpc_error(bind_by_sms, stack, stub, metadata(merchant_id, channel="H5", member_id=other), phone)
        assert (taken.code(), reason(taken)) == (grpc.StatusCode.ALREADY_EXISTS, "PHONE_TAKEN")
        bound = rpc_error(stub.SendPhoneCode, pb.SendPhoneCodeRequest(phone=new_phone()), metadata=me)
        assert reason(bound) == "PHONE_BOUND"
        # the staff find it by its digits, masked
        staff = metadata(merchant_id, staff_id=new_id("stf"), roles=("OWNER",))
        found = stub.ListMembers(pb.ListMembersRequest(phone_suffix=phone[-4:]), metadata=staff).members
        assert [(m.member_id, m.phone_masked) for m in found] == [(first, f"{phone[:3]}****{phone[-4:]}")]
        # new phones seal with the new key and are found the same way
        later = new_phone()
        bind_by_sms(stack, stub, metadata(merchant_id, channel="H5", member_id=other), later)
    after = db.member_phones.find_one({"merchant_id": merchant_id, "member_id": first})
    assert after == before  # nothing re-indexed or re-sealed
    newer = db.member_phones.find_one({"merchant_id": merchant_id, "member_id": other})
    assert newer["phone_sealed"].split(".")[1] == "k2"
