"""The member's address book over the member service's real gRPC port and MongoDB:
limits, unknown regions, the default, creation keys, phones sealed in storage and masked
in every answer, and other members and merchants kept out."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
from siyu.member.v1 import member_pb2 as pb, member_pb2_grpc

from siyu_kit.config import load
from siyu_kit.ids import new_id
from siyu_kit.sealing import Sealer
from tests.support import channel, database_fixture, field_violations, metadata, new_merchant_id, reason, rpc_error, \
    stub_fixture
from tests.support.member import login

stub = stub_fixture("member", member_pb2_grpc.MemberServiceStub)
db = database_fixture("member")

PHONE = "13812348000"


def _new(key: str, **changes) -> pb.CreateAddressRequest:
    fields = dict(idempotency_key=key, recipient="张三", phone=PHONE, province_code="440000", city_code="440300",
                  district_code="440305", detail="科技园 1 号")
    return pb.CreateAddressRequest(**{**fields, **changes})


def _member(stub):
    merchant_id = new_merchant_id()
    member_id = login(stub, merchant_id, f"u-{new_id('x')}").member.member_id
    return merchant_id, member_id, metadata(merchant_id, channel="H5", member_id=member_id)


def _plain_phone_nowhere(message) -> None:
    assert PHONE not in str(message) and "13900001111" not in str(message)


def test_a_member_keeps_an_address_book(stub, db):
    merchant_id, member_id, me = _member(stub)
    first = stub.CreateAddress(_new("a"), metadata=me)
    assert first.created
    a = first.address
    assert a.address_id.startswith("adr_") and a.is_default and a.version == 1
    assert (a.phone_masked, a.province_name, a.city_name, a.district_name) == ("138****8000", "广东省", "深圳市",
                                                                               "南山区")
    _plain_phone_nowhere(first)
    second = stub.CreateAddress(_new("b", is_default=True, phone="13900001111"), metadata=me).address
    listed = stub.ListAddresses(pb.ListAddressesRequest(), metadata=me).addresses
    assert [(x.address_id, x.is_default) for x in listed] == [(second.address_id, True), (a.address_id, False)]
    _plain_phone_nowhere(listed)

    edited = stub.UpdateAddress(pb.UpdateAddressRequest(
        address_id=a.address_id, recipient="李四", province_code="110000", city_code="110100", district_code="110105",
        detail="朝阳门外大街 2 号", expected_version=1), metadata=me).address
    assert (edited.recipient, edited.city_name, edited.district_name, edited.version) == ("李四", "北京市", "朝阳区", 2)
    assert edited.phone_masked == "138****8000"
    stale = rpc_error(stub.UpdateAddress, pb.UpdateAddressRequest(
        address_id=a.address_id, recipient="王五", province_code="110000", city_code="110100", district_code="110105",
        detail="x", expected_version=1), metadata=me)
    assert (stale.code(), reason(stale)) == (grpc.StatusCode.ABORTED, "VERSION_CONFLICT")

    assert stub.SetDefaultAddress(pb.SetDefaultAddressRequest(address_id=a.address_id), metadata=me).address.is_default
    assert stub.DeleteAddress(pb.DeleteAddressRequest(address_id=a.address_id),
                              metadata=me).default_address_id == second.address_id
    gone = rpc_error(stub.DeleteAddress, pb.DeleteAddressRequest(address_id=a.address_id), metadata=me)
    assert (gone.code(), reason(gone)) == (grpc.StatusCode.NOT_FOUND, "ADDRESS_NOT_FOUND")

    # Stored: the phone only sealed (bound to the merchant) and masked.
    doc = db.address_books.find_one({"merchant_id": merchant_id, "member_id": member_id})
    assert PHONE not in str(doc) and "13900001111" not in str(doc)
    sealer = Sealer.from_setting(load("member").data_key)
    assert sealer.open(doc["addresses"][0]["phone_sealed"], merchant_id) == "13900001111"


def test_the_creation_key_adds_once_even_when_calls_race(stack, db):
    with channel(stack, "member") as ch:
        stub = member_pb2_grpc.MemberServiceStub(ch)
        merchant_id, member_id, me = _member(stub)
        with ThreadPoolExecutor(max_workers=5) as pool:
            results = list(pool.map(lambda _: stub.CreateAddress(_new("same"), metadata=me), range(5)))
    assert len({r.address.address_id for r in results}) == 1 and sum(r.created for r in results) == 1
    doc = db.address_books.find_one({"merchant_id": merchant_id, "member_id": member_id})
    assert len(doc["addresses"]) == 1


def test_a_creation_key_used_for_another_address_is_refused_and_writes_nothing(stub, db):
    merchant_id, member_id, me = _member(stub)
    first = stub.CreateAddress(_new("k"), metadata=me).address
    before = db.address_books.find_one({"merchant_id": merchant_id, "member_id": member_id})
    for changes in (dict(recipient="李四"), dict(phone="13900001111"), dict(is_default=True)):
        error = rpc_error(stub.CreateAddress, _new("k", **changes), metadata=me)
        assert (error.code(), reason(error)) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    again = stub.CreateAddress(_new("k"), metadata=me)
    assert (again.address.address_id, again.created) == (first.address_id, False)
    after = db.address_books.find_one({"merchant_id": merchant_id, "member_id": member_id})
    assert after == before
    # stored: the key with its request's fingerprint, a keyed hash that does not hold the phone
    (key, address_id, fingerprint), = after["keys"]
    assert (key, address_id) == ("k", first.address_id) and len(fingerprint) == 64 and PHONE not in str(after)


def test_a_key_stored_before_fingerprints_were_kept_replays_as_before(stub, db):
    merchant_id, member_id, me = _member(stub)
    first = stub.CreateAddress(_new("old"), metadata=me).address
    db.address_books.update_one({"merchant_id": merchant_id, "member_id": member_id},
                                {"$set": {"keys": [["old", first.address_id]]}})
    again = stub.CreateAddress(_new("old", recipient="李四"), metadata=me)
    assert (again.address.address_id, again.created, again.address.recipient) == (first.address_id, False, "张三")
    assert stub.CreateAddress(_new("new"), metadata=me).created


def test_at_most_twenty_addresses_even_when_calls_race(stack, db):
    with channel(stack, "member") as ch:
        stub = member_pb2_grpc.MemberServiceStub(ch)
        merchant_id, member_id, me = _member(stub)
        for i in range(18):
            stub.CreateAddress(_new(f"k{i}"), metadata=me)

        def create(i):
            try:
                return stub.CreateAddress(_new(f"race{i}"), metadata=me).address.address_id
            except grpc.RpcError as error:
                return reason(error)

        with ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(create, range(6)))
    assert sum(r.startswith("adr_") for r in results) == 2
    assert set(r for r in results if not r.startswith("adr_")) <= {"ADDRESS_BOOK_FULL", "CONCURRENT_UPDATE"}
    assert "ADDRESS_BOOK_FULL" in results
    doc = db.address_books.find_one({"merchant_id": merchant_id, "member_id": member_id})
    assert len(doc["addresses"]) == 20
    assert sum(a["address_id"] == doc["default_id"] for a in doc["addresses"]) == 1


def test_unknown_or_misplaced_regions_are_field_violations_and_nothing_is_written(stub, db):
    merchant_id, member_id, me = _member(stub)
    for changes, field in ((dict(district_code="999999"), "district_code"),
                           (dict(city_code="310100"), "city_code"),
                           (dict(district_code="110105"), "district_code"),
                           (dict(province_code="4400"), "province_code"),
                           (dict(phone="1381234"), "phone")):
        error = rpc_error(stub.CreateAddress, _new(f"bad-{field}", **changes), metadata=me)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in field_violations(error), changes
    assert db.address_books.find_one({"merchant_id": merchant_id, "member_id": member_id}) is None


def test_another_member_or_merchant_cannot_read_or_change_the_book(stub, db):
    merchant_id, member_id, me = _member(stub)
    address = stub.CreateAddress(_new("a"), metadata=me).address
    other_member = metadata(merchant_id, channel="H5", member_id=new_id("mem"))
    other_merchant = metadata(new_merchant_id(), channel="H5", member_id=member_id)
    for caller in (other_member, other_merchant):
        assert list(stub.ListAddresses(pb.ListAddressesRequest(), metadata=caller).addresses) == []
        for call, request in ((stub.DeleteAddress, pb.DeleteAddressRequest(address_id=address.address_id)),
                              (stub.SetDefaultAddress, pb.SetDefaultAddressRequest(address_id=address.address_id)),
                              (stub.UpdateAddress, pb.UpdateAddressRequest(
                                  address_id=address.address_id, recipient="x", province_code="440000",
                                  city_code="440300", district_code="440305", detail="y"))):
            error = rpc_error(call, request, metadata=caller)
            assert (error.code(), reason(error)) == (grpc.StatusCode.NOT_FOUND, "ADDRESS_NOT_FOUND")
    doc = db.address_books.find_one({"merchant_id": merchant_id, "member_id": member_id})
    assert doc["version"] == 1 and doc["addresses"][0]["recipient"] == "张三"
    # A member's RPC without a member, and the internal read without a service, are refused.
    anonymous = rpc_error(stub.ListAddresses, pb.ListAddressesRequest(), metadata=metadata(merchant_id, channel="H5"))
    assert anonymous.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
    direct = rpc_error(stub.GetShippingAddress, pb.GetShippingAddressRequest(member_id=member_id), metadata=me)
    assert direct.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


def test_the_order_service_reads_the_default_with_the_full_phone(stub):
    merchant_id, member_id, me = _member(stub)
    as_order = metadata(merchant_id, service="order")
    missing = rpc_error(stub.GetShippingAddress, pb.GetShippingAddressRequest(member_id=member_id), metadata=as_order)
    assert (missing.code(), reason(missing)) == (grpc.StatusCode.NOT_FOUND, "ADDRESS_NOT_FOUND")
    a = stub.CreateAddress(_new("a"), metadata=me).address
    b = stub.CreateAddress(_new("b", phone="13900001111"), metadata=me).address
    found = stub.GetShippingAddress(pb.GetShippingAddressRequest(member_id=member_id), metadata=as_order)
    assert (found.address.address_id, found.phone, found.address.phone_masked) == (a.address_id, PHONE, "138****8000")
    named = stub.GetShippingAddress(pb.GetShippingAddressRequest(member_id=member_id, address_id=b.address_id),
                                    metadata=as_order)
    assert named.phone == "13900001111"
    elsewhere = rpc_error(stub.GetShippingAddress, pb.GetShippingAddressRequest(member_id=member_id),
                          metadata=metadata(new_merchant_id(), service="order"))
    assert reason(elsewhere) == "ADDRESS_NOT_FOUND"
