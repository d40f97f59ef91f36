"""Merchants, channel keys, staff users, staff login lock-out and staff sessions over the
member service's real gRPC port."""
from __future__ import annotations

import time

import grpc
import jwt
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from siyu.common.v1 import common_pb2
from siyu.member.v1 import member_pb2 as pb, member_pb2_grpc

from siyu_kit.config import load
from siyu_kit.context import RequestContext
from siyu_kit.ids import new_id
from tests.support import (database_fixture, field_violations, metadata, new_merchant_id, rpc_error, stub_fixture,
                           wait_until)

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
    ("GetTokenVersions", pb.GetTokenVersionsRequest(subjects=[pb.TokenSubject(merchant_id="mch_x",
                                                                              subject_id="stf_x")])),
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


# Staff login lock-out: per account and per client address, shared by every replica.

def at(address: str):
    """Call metadata of a staff login the gateway passes on from `address`."""
    return RequestContext(request_id=new_id("req"), client_address=address).to_metadata()


def new_address() -> str:
    return "198.51.100." + new_id("a")[-6:]


def error_info(error: grpc.RpcError) -> tuple[str, int]:
    """The reason and the RetryInfo delay (seconds, 0 when absent) of a failed call."""
    reason, delay = "", 0
    for detail in rpc_status.from_call(error).details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            delay = retry.retry_delay.seconds
    return reason, delay


def fresh_window(attempts: int) -> None:
    """The counters are per clock minute: start where `attempts` logins fit in this one."""
    room = 60 - max(10, attempts // 5)
    wait_until(lambda: time.time() % 60 < room, timeout=65, interval=0.2, message="room left in this minute")


def staff_shop(stub, *usernames: str, password: str = "s3cret-pass") -> str:
    code = new_code()
    merchant_id = stub.UpsertMerchant(pb.UpsertMerchantRequest(code=code, name="S"), metadata=OPS).merchant.merchant_id
    for username in usernames:
        stub.UpsertStaffUser(staff_request(merchant_id, username=username, password=password), metadata=OPS)
    return code


def attempt(stub, code, username, password, address):
    try:
        stub.StaffLogin(pb.StaffLoginRequest(merchant_code=code, username=username, password=password),
                        metadata=at(address))
    except grpc.RpcError as error:
        return error.code(), *error_info(error)
    return grpc.StatusCode.OK, "", 0


def test_the_11th_wrong_password_in_a_minute_is_refused_without_checking_it(stub):
    code = staff_shop(stub, "alice", "bob")
    here, elsewhere = new_address(), new_address()
    fresh_window(12)
    for _ in range(10):
        assert attempt(stub, code, "alice", "wrong-pass", here)[:2] == (grpc.StatusCode.UNAUTHENTICATED, "LOGIN_FAILED")
    status, reason, retry_after = attempt(stub, code, "alice", "wrong-pass", here)
    assert (status, reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "LOGIN_LOCKED") and 1 <= retry_after <= 60
    # Unchecked: the right password is refused too, from any address: the lock is the account's.
    assert attempt(stub, code, "alice", "s3cret-pass", here)[:2] == (grpc.StatusCode.RESOURCE_EXHAUSTED, "LOGIN_LOCKED")
    assert attempt(stub, code, "alice", "s3cret-pass", elsewhere)[1] == "LOGIN_LOCKED"
    # Another account from the same address is not locked.
    assert attempt(stub, code, "bob", "s3cret-pass", here)[0] == grpc.StatusCode.OK


def test_a_successful_login_resets_no_counter(stub):
    code = staff_shop(stub, "alice")
    here, elsewhere = new_address(), new_address()
    fresh_window(14)
    for _ in range(9):
        assert attempt(stub, code, "alice", "wrong-pass", here)[1] == "LOGIN_FAILED"
    assert attempt(stub, code, "alice", "s3cret-pass", elsewhere)[0] == grpc.StatusCode.OK
    assert attempt(stub, code, "alice", "s3cret-pass", here)[0] == grpc.StatusCode.OK
    # Still 9 failures in this minute: one more is checked, the next is not.
    assert attempt(stub, code, "alice", "wrong-pass", here)[1] == "LOGIN_FAILED"
    assert attempt(stub, code, "alice", "s3cret-pass", here)[1] == "LOGIN_LOCKED"


def test_one_address_trying_many_accounts_is_locked_out_by_address(stub):
    users = [f"user{i}" for i in range(51)]
    code = staff_shop(stub, "target")
    here, elsewhere = new_address(), new_address()
    fresh_window(53)
    for username in users[:50]:  # one guess per account: no account lock-out
        assert attempt(stub, code, username, "wrong-pass", here)[1] == "LOGIN_FAILED"
    assert attempt(stub, code, users[50], "wrong-pass", here)[1] == "LOGIN_LOCKED"
    assert attempt(stub, code, "target", "s3cret-pass", here)[1] == "LOGIN_LOCKED"
    # The account itself is not locked: from another address it logs in.
    assert attempt(stub, code, "target", "s3cret-pass", elsewhere)[0] == grpc.StatusCode.OK


# Staff sessions: short access tokens, single-use refresh tokens, versions.

def staff_login(stub, code, username="alice", password="s3cret-pass"):
    return stub.StaffLogin(pb.StaffLoginRequest(merchant_code=code, username=username, password=password))


def version_of(stub, merchant_id, subject_id) -> tuple[int, bool]:
    reply = stub.GetTokenVersions(pb.GetTokenVersionsRequest(
        subjects=[pb.TokenSubject(merchant_id=merchant_id, subject_id=subject_id)]), metadata=OPS)
    (found,) = reply.versions
    assert (found.subject.merchant_id, found.subject.subject_id) == (merchant_id, subject_id)
    return found.version, found.active


def test_staff_refresh_rotates_and_a_reused_refresh_token_ends_the_session(stub):
    code = staff_shop(stub, "alice")
    login = staff_login(stub, code)
    claims = jwt.decode(login.access_token, load("member").jwt_secret, algorithms=["HS256"])
    merchant_id, staff_id, version = claims["mid"], claims["sub"], claims["ver"]
    assert version_of(stub, merchant_id, staff_id) == (version, True)
    refreshed = stub.StaffRefreshToken(pb.StaffRefreshTokenRequest(refresh_token=login.refresh_token))
    assert refreshed.expires_in_seconds == 15 * 60 and list(refreshed.roles) == [common_pb2.STAFF_ROLE_OWNER]
    assert refreshed.refresh_token != login.refresh_token
    # The used refresh token again: refused, and every token of the user ends with it.
    error = rpc_error(stub.StaffRefreshToken, pb.StaffRefreshTokenRequest(refresh_token=login.refresh_token))
    assert (error.code(), error_info(error)[0]) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")
    assert version_of(stub, merchant_id, staff_id) == (version + 1, True)
    error = rpc_error(stub.StaffRefreshToken, pb.StaffRefreshTokenRequest(refresh_token=refreshed.refresh_token))
    assert error_info(error)[0] == "TOKEN_REVOKED"
    # A member's refresh token or an access token is not a staff refresh token.
    error = rpc_error(stub.StaffRefreshToken, pb.StaffRefreshTokenRequest(refresh_token=login.access_token))
    assert error_info(error)[0] == "TOKEN_KIND"


def test_staff_logout_revokes_the_refresh_token_and_every_token(stub):
    code = staff_shop(stub, "alice")
    login = staff_login(stub, code)
    claims = jwt.decode(login.access_token, load("member").jwt_secret, algorithms=["HS256"])
    as_staff = metadata(claims["mid"], staff_id=claims["sub"], roles=("OWNER",))
    stub.StaffLogout(pb.StaffLogoutRequest(refresh_token=login.refresh_token), metadata=as_staff)
    assert version_of(stub, claims["mid"], claims["sub"]) == (claims["ver"] + 1, True)
    error = rpc_error(stub.StaffRefreshToken, pb.StaffRefreshTokenRequest(refresh_token=login.refresh_token))
    assert error_info(error)[0] == "TOKEN_REVOKED"
    # Someone else's refresh token cannot be logged out; a member cannot call it.
    other = staff_login(stub, staff_shop(stub, "alice"))
    error = rpc_error(stub.StaffLogout, pb.StaffLogoutRequest(refresh_token=other.refresh_token), metadata=as_staff)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    error = rpc_error(stub.StaffLogout, pb.StaffLogoutRequest(),
                      metadata=metadata(claims["mid"], channel="H5", member_id=new_id("mem")))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    # Logging in again works, with the current version.
    again = jwt.decode(staff_login(stub, code).access_token, load("member").jwt_secret, algorithms=["HS256"])
    assert (again["ver"], True) == version_of(stub, claims["mid"], claims["sub"]) and again["ver"] > claims["ver"]


def test_changing_or_disabling_a_staff_user_ends_their_tokens(stub, db):
    code = staff_shop(stub, "alice")
    login = staff_login(stub, code)
    claims = jwt.decode(login.access_token, load("member").jwt_secret, algorithms=["HS256"])
    merchant_id, staff_id = claims["mid"], claims["sub"]
    stub.UpsertStaffUser(staff_request(merchant_id, roles=[common_pb2.STAFF_ROLE_GUIDE]), metadata=OPS)
    assert version_of(stub, merchant_id, staff_id) == (claims["ver"] + 1, True)
    error = rpc_error(stub.StaffRefreshToken, pb.StaffRefreshTokenRequest(refresh_token=login.refresh_token))
    assert error_info(error)[0] == "TOKEN_REVOKED"
    demoted = staff_login(stub, code)
    assert list(demoted.roles) == [common_pb2.STAFF_ROLE_GUIDE]

    stub.UpsertStaffUser(pb.UpsertStaffUserRequest(merchant_id=merchant_id, username="alice", password="s3cret-pass",
                                                   roles=[common_pb2.STAFF_ROLE_GUIDE], disabled=True), metadata=OPS)
    assert version_of(stub, merchant_id, staff_id) == (claims["ver"] + 2, False)
    error = rpc_error(staff_login, stub, code)
    assert (error.code(), error_info(error)[0]) == (grpc.StatusCode.UNAUTHENTICATED, "LOGIN_FAILED")
    error = rpc_error(stub.StaffRefreshToken, pb.StaffRefreshTokenRequest(refresh_token=demoted.refresh_token))
    assert error_info(error)[0] == "TOKEN_REVOKED"
    assert version_of(stub, merchant_id, new_id("stf")) == (0, False)
    # Each refresh token is stored by id, and none of this user's is usable any more.
    stored = list(db.refresh_tokens.find({"subject_id": staff_id}))
    assert len(stored) == 2 and all(d["merchant_id"] == merchant_id and d["expires_at"] for d in stored)
    assert {d["state"] for d in stored} == {"USED"}


def test_token_versions_of_many_subjects_answer_in_order(stub):
    code = staff_shop(stub, "alice", "bob")
    alice = jwt.decode(staff_login(stub, code).access_token, load("member").jwt_secret, algorithms=["HS256"])
    merchant_id = alice["mid"]
    bob_id = stub.UpsertStaffUser(staff_request(merchant_id, username="bob", roles=[common_pb2.STAFF_ROLE_GUIDE]),
                                  metadata=OPS).staff_id
    asked = [(merchant_id, bob_id), (new_merchant_id(), alice["sub"]), (merchant_id, alice["sub"]),
             (merchant_id, "xyz_1"), (merchant_id, new_id("mem"))]
    reply = stub.GetTokenVersions(pb.GetTokenVersionsRequest(
        subjects=[pb.TokenSubject(merchant_id=m, subject_id=s) for m, s in asked]), metadata=OPS)
    assert [(v.subject.merchant_id, v.subject.subject_id) for v in reply.versions] == asked
    # Bob was changed once after creation; Alice belongs to her merchant only.
    assert [(v.version, v.active) for v in reply.versions] == [(2, True), (0, False), (alice["ver"], True),
                                                              (0, False), (0, False)]
    error = rpc_error(stub.GetTokenVersions, pb.GetTokenVersionsRequest(
        subjects=[pb.TokenSubject(merchant_id=merchant_id, subject_id=bob_id)] * 1001), metadata=OPS)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
