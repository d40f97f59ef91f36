"""Merchants, channel keys and staff users over the member service's real gRPC port."""
from __future__ import annotations

import grpc
import jwt
import pytest
from siyu.common.v1 import common_pb2
from siyu.member.v1 import member_pb2 as pb, member_pb2_grpc

from siyu_kit.config import load
from siyu_kit.ids import new_id
from tests.support import field_violations, metadata, new_merchant_id, rpc_error, database_fixture, stub_fixture

OPS = metadata(service="ops")


stub = stub_fixture("member", member_pb2_grpc.MemberServiceStub)
db = database_fixture("member")


def new_code() -> str:
    return "m-" + new_id("x")[-20:].lower()


def make_merchant(stub, name="Shop") -> str:
    return stub.UpsertMerchant(pb.UpsertMerchantRequest(code=new_code(), name=name), metadata=OPS).merchant.merchant_id



# Merchants

def test_upsert_merchant_creates_once_then_updates_by_code(stub, db):
    code = new_code()
    first = stub.UpsertMerchant(pb.UpsertMerchantRequest(code=code, name="Tea House"), metadata=OPS)
    assert first.created and first.merchant.merchant_id.startswith("mch_")
    assert first.merchant.time_zone == "Asia/Shanghai"
    again = stub.UpsertMerchant(pb.UpsertMerchantRequest(code=code, name="Tea House"), metadata=OPS)
    assert not again.created and again.merchant == first.merchant
    renamed = stub.UpsertMerchant(pb.UpsertMerchantRequest(code=code, name="Tea House 2", time_zone="Asia/Tokyo"),
                                  metadata=OPS)
    assert not renamed.created and renamed.merchant.merchant_id == first.merchant.merchant_id
    assert (renamed.merchant.name, renamed.merchant.time_zone) == ("Tea House 2", "Asia/Tokyo")
    stored = db.merchants.find_one({"code": code})
    assert stored["version"] == 2
    assert stored["config"]["tier_thresholds"] == [0, 1000, 5000, 15000]
    assert stored["config"]["tier_discount_bp"] == [10000, 9500, 9000, 8500]
    assert stored["config"]["points_multiplier_bp"] == [10000, 12000, 15000, 20000]
    assert db.merchants.count_documents({"code": code}) == 1


def test_upsert_merchant_bad_input_writes_nothing(stub, db):
    error = rpc_error(stub.UpsertMerchant, pb.UpsertMerchantRequest(code="Bad Code!", name=" ", time_zone="Mars/Base"),
                      metadata=OPS)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"code", "name", "time_zone"}
    code = new_code()
    error = rpc_error(stub.UpsertMerchant, pb.UpsertMerchantRequest(code=code, name="ok", time_zone="Nowhere"),
                      metadata=OPS)
    assert set(field_violations(error)) == {"time_zone"}
    assert db.merchants.count_documents({"code": code}) == 0


@pytest.mark.parametrize("method, request_", [
    ("UpsertMerchant", pb.UpsertMerchantRequest(code="x-internal", name="x")),
    ("UpsertApiKey", pb.UpsertApiKeyRequest()),
    ("UpsertStaffUser", pb.UpsertStaffUserRequest()),
    ("ResolveApiKey", pb.ResolveApiKeyRequest(api_key="k" * 20)),
])
def test_internal_rpcs_refuse_callers_from_outside(stub, method, request_):
    md = metadata(new_merchant_id(), channel="H5")
    error = rpc_error(getattr(stub, method), request_, metadata=md)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


# Channel API keys

def test_api_key_upsert_is_idempotent_and_resolves(stub, db):
    merchant_id = make_merchant(stub)
    key = "key-" + new_id("k")
    req = pb.UpsertApiKeyRequest(merchant_id=merchant_id, channel=common_pb2.CHANNEL_H5, api_key=key)
    assert stub.UpsertApiKey(req, metadata=OPS).created
    assert not stub.UpsertApiKey(req, metadata=OPS).created
    resolved = stub.ResolveApiKey(pb.ResolveApiKeyRequest(api_key=key), metadata=OPS)
    assert (resolved.merchant_id, resolved.channel) == (merchant_id, common_pb2.CHANNEL_H5)
    stored = list(db.api_keys.find({"merchant_id": merchant_id}))
    assert len(stored) == 1 and key not in str(stored)


def test_unknown_api_key_is_unauthenticated(stub):
    error = rpc_error(stub.ResolveApiKey, pb.ResolveApiKeyRequest(api_key="never-issued-" + new_id("k")),
                      metadata=OPS)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == "unknown channel key"
    error = rpc_error(stub.ResolveApiKey, pb.ResolveApiKeyRequest(), metadata=OPS)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and set(field_violations(error)) == {"api_key"}


def test_a_key_cannot_move_to_another_merchant(stub):
    a, b = make_merchant(stub), make_merchant(stub)
    key = "key-" + new_id("k")
    stub.UpsertApiKey(pb.UpsertApiKeyRequest(merchant_id=a, channel=common_pb2.CHANNEL_H5, api_key=key), metadata=OPS)
    error = rpc_error(stub.UpsertApiKey,
                      pb.UpsertApiKeyRequest(merchant_id=b, channel=common_pb2.CHANNEL_H5, api_key=key), metadata=OPS)
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert stub.ResolveApiKey(pb.ResolveApiKeyRequest(api_key=key), metadata=OPS).merchant_id == a


def test_api_key_bad_input_writes_nothing(stub, db):
    merchant_id = make_merchant(stub)
    error = rpc_error(stub.UpsertApiKey, pb.UpsertApiKeyRequest(merchant_id=merchant_id, api_key="short"),
                      metadata=OPS)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"channel", "api_key"}
    error = rpc_error(stub.UpsertApiKey, pb.UpsertApiKeyRequest(channel=common_pb2.CHANNEL_LIVE, api_key="k" * 20),
                      metadata=OPS)
    assert set(field_violations(error)) == {"merchant_id"}
    error = rpc_error(stub.UpsertApiKey, pb.UpsertApiKeyRequest(merchant_id=new_merchant_id(),
                                                                channel=common_pb2.CHANNEL_LIVE, api_key="k" * 20),
                      metadata=OPS)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert db.api_keys.count_documents({"merchant_id": merchant_id}) == 0


# Staff users

def staff_request(merchant_id, username="alice", password="s3cret-pass", roles=(common_pb2.STAFF_ROLE_OWNER,)):
    return pb.UpsertStaffUserRequest(merchant_id=merchant_id, username=username, password=password, roles=roles)


def test_staff_upsert_is_idempotent_and_login_works(stub, db):
    code = new_code()
    merchant_id = stub.UpsertMerchant(pb.UpsertMerchantRequest(code=code, name="S"), metadata=OPS).merchant.merchant_id
    first = stub.UpsertStaffUser(staff_request(merchant_id, roles=[common_pb2.STAFF_ROLE_OPERATOR]), metadata=OPS)
    assert first.created and first.staff_id.startswith("stf_")
    again = stub.UpsertStaffUser(staff_request(merchant_id, roles=[common_pb2.STAFF_ROLE_OPERATOR,
                                                                   common_pb2.STAFF_ROLE_FINANCE]), metadata=OPS)
    assert not again.created and again.staff_id == first.staff_id
    stored = db.staff_users.find_one({"merchant_id": merchant_id, "username": "alice"})
    assert stored["password_hash"].startswith("scrypt$") and "s3cret-pass" not in str(stored)

    login = stub.StaffLogin(pb.StaffLoginRequest(merchant_code=code, username="alice", password="s3cret-pass"))
    assert list(login.roles) == [common_pb2.STAFF_ROLE_OPERATOR, common_pb2.STAFF_ROLE_FINANCE]
    claims = jwt.decode(login.access_token, load("member").jwt_secret, algorithms=["HS256"])
    assert (claims["typ"], claims["sub"], claims["mid"]) == ("staff", first.staff_id, merchant_id)
    assert claims["roles"] == ["OPERATOR", "FINANCE"]
    assert login.expires_in_seconds == 15 * 60 and login.refresh_token


def test_staff_login_failures_look_the_same(stub):
    code = new_code()
    merchant_id = stub.UpsertMerchant(pb.UpsertMerchantRequest(code=code, name="S"), metadata=OPS).merchant.merchant_id
    stub.UpsertStaffUser(staff_request(merchant_id), metadata=OPS)
    other_code = new_code()
    stub.UpsertMerchant(pb.UpsertMerchantRequest(code=other_code, name="Other"), metadata=OPS)
    messages = set()
    for req in (pb.StaffLoginRequest(merchant_code=code, username="alice", password="wrong-pass"),
                pb.StaffLoginRequest(merchant_code=code, username="bob", password="s3cret-pass"),
                pb.StaffLoginRequest(merchant_code="no-such-shop", username="alice", password="s3cret-pass"),
                # Merchant B's code with merchant A's credentials.
                pb.StaffLoginRequest(merchant_code=other_code, username="alice", password="s3cret-pass")):
        error = rpc_error(stub.StaffLogin, req)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        messages.add(error.details())
    assert len(messages) == 1
    error = rpc_error(stub.StaffLogin, pb.StaffLoginRequest())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"merchant_code", "username", "password"}


def test_staff_users_are_per_merchant(stub):
    a_code, b_code = new_code(), new_code()
    a = stub.UpsertMerchant(pb.UpsertMerchantRequest(code=a_code, name="A"), metadata=OPS).merchant.merchant_id
    b = stub.UpsertMerchant(pb.UpsertMerchantRequest(code=b_code, name="B"), metadata=OPS).merchant.merchant_id
    sa = stub.UpsertStaffUser(staff_request(a, password="password-a"), metadata=OPS)
    sb = stub.UpsertStaffUser(staff_request(b, password="password-b"), metadata=OPS)
    assert sa.created and sb.created and sa.staff_id != sb.staff_id
    # B's upsert of the same username left A's password alone.
    stub.StaffLogin(pb.StaffLoginRequest(merchant_code=a_code, username="alice", password="password-a"))
    error = rpc_error(stub.StaffLogin, pb.StaffLoginRequest(merchant_code=a_code, username="alice",
                                                            password="password-b"))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_staff_bad_input_writes_nothing(stub, db):
    merchant_id = make_merchant(stub)
    error = rpc_error(stub.UpsertStaffUser, staff_request(merchant_id, username="a b", password="short", roles=[]),
                      metadata=OPS)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"username", "password", "roles"}
    error = rpc_error(stub.UpsertStaffUser, staff_request(merchant_id, roles=[common_pb2.STAFF_ROLE_UNSPECIFIED]),
                      metadata=OPS)
    assert set(field_violations(error)) == {"roles"}
    error = rpc_error(stub.UpsertStaffUser, staff_request(new_merchant_id()), metadata=OPS)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert db.staff_users.count_documents({"merchant_id": merchant_id}) == 0
