"""Staff administration, the audit trail, tiers and platform onboarding over the member
service's real gRPC port and database: what is stored (hashes and hints, never keys or
passwords), the token version a disable moves, and the member's stored growth."""
from __future__ import annotations

import grpc
from siyu.common.v1 import common_pb2
from siyu.member.v1 import member_pb2 as pb, member_pb2_grpc

from siyu_kit.context import RequestContext
from siyu_kit.ids import new_id
from tests.support import database_fixture, field_violations, metadata, rpc_error, stub_fixture

stub = stub_fixture("member", member_pb2_grpc.MemberServiceStub)
db = database_fixture("member")
PLATFORM = RequestContext(request_id=new_id("req"), caller_kind="platform", caller_id="platform").to_metadata()


def onboard(stub, **extra) -> pb.OnboardMerchantResponse:
    code = "m-" + new_id("x")[-20:].lower()
    request = pb.OnboardMerchantRequest(code=code, name="Shop", owner_username="boss", owner_password="password-1",
                                        channels=[common_pb2.CHANNEL_H5], **extra)
    return stub.OnboardMerchant(request, metadata=PLATFORM)


def test_onboarding_stores_hashes_and_hints_and_an_audit_entry_each(stub, db):
    done = onboard(stub)
    mid = done.merchant.merchant_id
    key = done.api_keys[0]
    stored = db.api_keys.find_one({"merchant_id": mid})
    assert key.api_key not in str(stored) and stored["prefix"] == key.api_key[:6] and stored["last4"] == key.api_key[-4:]
    assert stored["disabled"] == 0
    owner = db.staff_users.find_one({"merchant_id": mid})
    assert owner["_id"] == done.owner_staff_id and owner["roles"] == ["OWNER"] and "password-1" not in str(owner)
    entries = list(db.audit_entries.find({"merchant_id": mid}))
    assert sorted(e["action"] for e in entries) == ["API_KEY_CREATED", "MERCHANT_ONBOARDED", "STAFF_USER_CREATED"]
    assert key.api_key not in str(entries) and "password-1" not in str(entries)
    resolved = stub.ResolveApiKey(pb.ResolveApiKeyRequest(api_key=key.api_key), metadata=metadata(service="gateway"))
    assert resolved.merchant_id == mid


def test_only_the_platform_onboards_and_bad_input_writes_nothing(stub, db):
    staff = metadata(new_id("mch"), staff_id=new_id("stf"), roles=("OWNER",))
    error = rpc_error(stub.OnboardMerchant, pb.OnboardMerchantRequest(code="x-y", name="n", owner_username="bo",
                                                                      owner_password="password-1"), metadata=staff)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    code = "m-" + new_id("x")[-20:].lower()
    bad = rpc_error(stub.OnboardMerchant, pb.OnboardMerchantRequest(code=code, name="n", time_zone="Mars/Base",
                                                                    owner_username="bo", owner_password="short"),
                    metadata=PLATFORM)
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "owner_password" in field_violations(bad)
    assert db.merchants.count_documents({"code": code}) == 0


def test_a_disabled_key_stops_resolving_and_a_disabled_user_stops_being_active(stub, db):
    done = onboard(stub)
    mid, owner = done.merchant.merchant_id, done.owner_staff_id
    as_owner = metadata(mid, staff_id=owner, roles=("OWNER",))
    gateway = metadata(service="gateway")
    key = done.api_keys[0]
    stub.DisableApiKey(pb.DisableApiKeyRequest(key_id=key.key.key_id), metadata=as_owner)
    error = rpc_error(stub.ResolveApiKey, pb.ResolveApiKeyRequest(api_key=key.api_key), metadata=gateway)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    clerk = stub.CreateStaffUser(pb.CreateStaffUserRequest(username="clerk", password="password-2",
                                                           roles=[common_pb2.STAFF_ROLE_GUIDE]), metadata=as_owner).user
    subject = pb.TokenSubject(merchant_id=mid, subject_id=clerk.staff_id)
    before = stub.GetTokenVersions(pb.GetTokenVersionsRequest(subjects=[subject]), metadata=gateway).versions[0]
    stub.SetStaffUserDisabled(pb.SetStaffUserDisabledRequest(staff_id=clerk.staff_id, disabled=True),
                              metadata=as_owner)
    after = stub.GetTokenVersions(pb.GetTokenVersionsRequest(subjects=[subject]), metadata=gateway).versions[0]
    assert before.active and not after.active and after.version == before.version + 1
    listed = stub.ListAuditEntries(pb.ListAuditEntriesRequest(target_id=clerk.staff_id), metadata=as_owner).entries
    assert [e.action for e in listed] == ["STAFF_USER_DISABLED", "STAFF_USER_CREATED"]
    assert listed[0].actor_id == owner and listed[0].after["disabled"] == "true"


def test_tier_config_is_stored_on_its_version_and_the_members_tier_follows(stub, db):
    done = onboard(stub)
    mid = done.merchant.merchant_id
    operator = metadata(mid, staff_id=new_id("stf"), roles=("OPERATOR",))
    config = stub.GetTierConfig(pb.GetTierConfigRequest(), metadata=operator).config
    levels = [pb.TierLevel(tier=lv.tier, threshold=lv.threshold // 10, discount_bp=lv.discount_bp,
                           points_multiplier_bp=lv.points_multiplier_bp) for lv in config.levels]
    updated = stub.UpdateTierConfig(pb.UpdateTierConfigRequest(levels=levels, expected_version=config.version),
                                    metadata=operator).config
    assert updated.version == config.version + 1
    assert db.merchants.find_one({"_id": mid})["config"]["tier_thresholds"] == [0, 100, 500, 1500]
    stale = rpc_error(stub.UpdateTierConfig, pb.UpdateTierConfigRequest(levels=levels, expected_version=config.version),
                      metadata=operator)
    assert stale.code() == grpc.StatusCode.ABORTED
    member = new_id("mem")
    db.members.insert_one({"_id": member, "merchant_id": mid, "nickname": "m", "growth": 0})
    db.points_entries.insert_one({"_id": new_id("pte"), "merchant_id": mid, "member_id": member, "source": "ORDER",
                                  "source_id": new_id("ord"), "points": 1, "growth": 600})
    mine = stub.GetMyTier(pb.GetMyTierRequest(), metadata=metadata(mid, channel="H5", member_id=member))
    assert (mine.tier, mine.growth_value, mine.next_tier, mine.growth_needed) == (
        pb.TIER_GOLD, 600, pb.TIER_BLACK_GOLD, 900)
