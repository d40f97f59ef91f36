"""Member login across channels, tokens, GetMe and GetPoints, and points from paid orders,
over the member service's real gRPC port, MongoDB and NATS."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import grpc
import jwt
import nats
import pytest
from siyu.common.v1 import common_pb2
from siyu.member.v1 import events_pb2, member_pb2 as pb, member_pb2_grpc

from siyu_kit import auth
from siyu_kit.config import load
from siyu_kit.events.outbox import decode
from siyu_kit.ids import new_id
from tests.support import channel, field_violations, metadata, new_merchant_id, wait_until, rpc_error, database_fixture, stub_fixture
from tests.support.member import login, order_paid, publish

SECRET = load("member").jwt_secret


stub = stub_fixture("member", member_pb2_grpc.MemberServiceStub)
db = database_fixture("member")



def as_member(merchant_id, member_id, ch="H5"):
    return metadata(merchant_id, channel=ch, member_id=member_id)


# Login

def test_login_on_two_channels_reaches_one_member(stub, db):
    merchant_id = new_merchant_id()
    first = login(stub, merchant_id, "u-alice", "H5", nickname="Alice")
    assert first.created and first.member.member_id.startswith("mem_")
    assert first.member.nickname == "Alice" and first.member.tier == pb.TIER_REGULAR
    assert list(first.member.channels) == [common_pb2.CHANNEL_H5]
    second = login(stub, merchant_id, "u-alice", "MINI_PROGRAM")
    assert not second.created and second.member.member_id == first.member.member_id
    assert set(second.member.channels) == {common_pb2.CHANNEL_H5, common_pb2.CHANNEL_MINI_PROGRAM}
    third = login(stub, merchant_id, "u-alice", "MINI_PROGRAM")
    assert not third.created and third.member.member_id == first.member.member_id

    access = jwt.decode(second.access_token, SECRET, algorithms=["HS256"])
    refresh = jwt.decode(second.refresh_token, SECRET, algorithms=["HS256"])
    assert (access["typ"], access["sub"], access["mid"]) == ("member", first.member.member_id, merchant_id)
    assert access["exp"] - access["iat"] == 2 * 3600 == second.expires_in_seconds
    assert (refresh["typ"], refresh["exp"] - refresh["iat"]) == ("refresh", 30 * 24 * 3600)
    assert db.members.count_documents({"merchant_id": merchant_id}) == 1
    assert db.channel_identities.count_documents({"merchant_id": merchant_id}) == 2


def test_twenty_concurrent_first_logins_make_one_member(stack, db):
    merchant_id = new_merchant_id()
    with channel(stack, "member") as ch:
        stub = member_pb2_grpc.MemberServiceStub(ch)
        with ThreadPoolExecutor(max_workers=20) as pool:
            results = list(pool.map(lambda _: login(stub, merchant_id, "u-rush"), range(20)))
    assert len({r.member.member_id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert db.members.count_documents({"merchant_id": merchant_id}) == 1
    assert db.union_identities.count_documents({"merchant_id": merchant_id}) == 1
    assert db.channel_identities.count_documents({"merchant_id": merchant_id}) == 1


async def test_a_new_member_is_announced_once(stack, stub):
    merchant_id = new_merchant_id()
    member_id = login(stub, merchant_id, "u-announce", "LIVE").member.member_id
    nc = await nats.connect(stack.nats_url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe("siyu.member.member.registered", stream="SIYU_MEMBER")
        found = []
        async def drain():
            try:
                for msg in await sub.fetch(batch=200, timeout=0.5):
                    envelope = decode(msg.data)
                    if envelope.merchant_id == merchant_id:
                        found.append(envelope)
                    await msg.ack()
            except nats.errors.TimeoutError:
                pass
            return found
        for _ in range(100):
            if await drain():
                break
    finally:
        await nc.close()
    assert len(found) == 1
    registered = events_pb2.MemberRegistered()
    assert found[0].payload.Unpack(registered)
    assert (found[0].aggregate_id, registered.member.member_id) == (member_id, member_id)
    assert registered.channel == common_pb2.CHANNEL_LIVE and found[0].channel == common_pb2.CHANNEL_LIVE


@pytest.mark.parametrize("code, nickname, fields", [
    ("", "", {"code"}),
    ("wx:abc", "", {"code"}),
    ("sandbox:bad id!", "", {"code"}),
    ("sandbox:ok", "n" * 65, {"nickname"}),
])
def test_login_bad_input_writes_nothing(stub, db, code, nickname, fields):
    merchant_id = new_merchant_id()
    error = rpc_error(stub.Login, pb.LoginRequest(code=code, nickname=nickname),
                      metadata=metadata(merchant_id, channel="H5"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == fields
    for name in ("members", "union_identities", "channel_identities"):
        assert db[name].count_documents({"merchant_id": merchant_id}) == 0


def test_login_needs_a_channel_key(stub):
    error = rpc_error(stub.Login, pb.LoginRequest(code="sandbox:x"), metadata=metadata(new_merchant_id()))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


# Tokens

def test_refresh_gives_a_new_pair_for_an_existing_member(stub):
    merchant_id = new_merchant_id()
    first = login(stub, merchant_id, "u-refresh")
    md = metadata(merchant_id, channel="H5")
    pair = stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=first.refresh_token), metadata=md)
    assert jwt.decode(pair.access_token, SECRET, algorithms=["HS256"])["sub"] == first.member.member_id
    assert jwt.decode(pair.refresh_token, SECRET, algorithms=["HS256"])["typ"] == "refresh"
    # An access token is not a refresh token.
    error = rpc_error(stub.RefreshToken, pb.RefreshTokenRequest(refresh_token=first.access_token), metadata=md)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    error = rpc_error(stub.RefreshToken, pb.RefreshTokenRequest(refresh_token="not-a-jwt"), metadata=md)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    error = rpc_error(stub.RefreshToken, pb.RefreshTokenRequest(), metadata=md)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and set(field_violations(error)) == {"refresh_token"}


def test_refresh_refuses_a_member_that_does_not_exist(stub):
    merchant_id = new_merchant_id()
    ghost = auth.issue(SECRET, auth.TokenClaims("refresh", new_id("mem"), merchant_id), 60)
    error = rpc_error(stub.RefreshToken, pb.RefreshTokenRequest(refresh_token=ghost),
                      metadata=metadata(merchant_id, channel="H5"))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


# Member centre

def test_get_me_and_get_points_require_the_member(stub):
    merchant_id = new_merchant_id()
    for call, req in ((stub.GetMe, pb.GetMeRequest()), (stub.GetPoints, pb.GetPointsRequest())):
        error = rpc_error(call, req, metadata=metadata(merchant_id, channel="H5"))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        error = rpc_error(call, req, metadata=metadata(merchant_id, channel="H5", staff_id=new_id("stf")))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_get_me_and_empty_points(stub):
    merchant_id = new_merchant_id()
    member = login(stub, merchant_id, "u-me", nickname="Me").member
    me = stub.GetMe(pb.GetMeRequest(), metadata=as_member(merchant_id, member.member_id)).member
    assert (me.member_id, me.nickname, me.tier, me.growth_value, me.phone_masked) == \
        (member.member_id, "Me", pb.TIER_REGULAR, 0, "")
    points = stub.GetPoints(pb.GetPointsRequest(), metadata=as_member(merchant_id, member.member_id))
    assert (points.balance, points.frozen, points.available, len(points.entries)) == (0, 0, 0, 0)


def test_merchants_cannot_see_each_others_members(stub):
    a, b = new_merchant_id(), new_merchant_id()
    in_a = login(stub, a, "u-shared")
    in_b = login(stub, b, "u-shared")
    assert in_b.created and in_b.member.member_id != in_a.member.member_id
    for call, req in ((stub.GetMe, pb.GetMeRequest()), (stub.GetPoints, pb.GetPointsRequest())):
        error = rpc_error(call, req, metadata=as_member(b, in_a.member.member_id))
        assert error.code() == grpc.StatusCode.NOT_FOUND
    error = rpc_error(stub.RefreshToken, pb.RefreshTokenRequest(refresh_token=in_a.refresh_token),
                      metadata=metadata(b, channel="H5"))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


# Points from paid orders

def points_of(stub, merchant_id, member_id):
    return stub.GetPoints(pb.GetPointsRequest(), metadata=as_member(merchant_id, member_id))


async def test_an_order_earns_points_once_whatever_the_replays(stack, stub, db):
    merchant_id = new_merchant_id()
    member_id = login(stub, merchant_id, "u-buyer").member.member_id
    order_id = new_id("ord")
    event = order_paid(merchant_id, member_id, order_id, 12_345)
    await publish(stack, event)
    # The entry and the balance are two writes: wait for both.
    points = wait_until(lambda: (p := points_of(stub, merchant_id, member_id)).entries and p.balance and p,
                        message="points entry and balance")
    assert (points.balance, points.frozen, points.available) == (123, 123, 0)
    entry = points.entries[0]
    assert (entry.source, entry.source_id, entry.points, entry.frozen) == (pb.POINTS_SOURCE_ORDER, order_id, 123, True)
    stored = db.points_entries.find_one({"merchant_id": merchant_id, "source_id": order_id})
    assert stored["frozen"] == 1 and stored["growth"] == 123
    assert stored["frozen_until"].replace(tzinfo=timezone.utc) == datetime(2025, 3, 8, 8, 0, tzinfo=timezone.utc)

    # The same event again, and a copy with a new event id for the same order, then a
    # marker order: once the marker is in, both replays have been handled.
    copy = order_paid(merchant_id, member_id, order_id, 12_345)
    marker = order_paid(merchant_id, member_id, new_id("ord"), 100)
    await publish(stack, event, copy, marker)
    wait_until(lambda: len(points_of(stub, merchant_id, member_id).entries) >= 2, message="marker entry")
    points = points_of(stub, merchant_id, member_id)
    assert [e.source_id for e in points.entries].count(order_id) == 1
    assert (len(points.entries), points.balance) == (2, 124)
    me = stub.GetMe(pb.GetMeRequest(), metadata=as_member(merchant_id, member_id)).member
    assert me.growth_value == 124


async def test_growth_upgrades_the_tier_at_once_and_multiplies_points(stack, stub):
    merchant_id = new_merchant_id()
    member_id = login(stub, merchant_id, "u-vip").member.member_id
    await publish(stack, order_paid(merchant_id, member_id, new_id("ord"), 100_000))  # ¥1,000
    wait_until(lambda: stub.GetMe(pb.GetMeRequest(), metadata=as_member(merchant_id, member_id))
               .member.tier == pb.TIER_SILVER, message="silver tier")
    second = new_id("ord")
    await publish(stack, order_paid(merchant_id, member_id, second, 10_099))  # ¥100.99
    wait_until(lambda: len(points_of(stub, merchant_id, member_id).entries) == 2, message="second entry")
    points = points_of(stub, merchant_id, member_id)
    assert points.entries[0].source_id == second and points.entries[0].points == 120  # 100 × 1.2
    assert points.balance == 1_000 + 120
    me = stub.GetMe(pb.GetMeRequest(), metadata=as_member(merchant_id, member_id)).member
    assert (me.growth_value, me.tier) == (1_100, pb.TIER_SILVER)


async def test_points_go_only_to_the_orders_merchant(stack, stub, db):
    a, b = new_merchant_id(), new_merchant_id()
    member_a = login(stub, a, "u-iso").member.member_id
    member_b = login(stub, b, "u-iso").member.member_id
    # An order of merchant B naming A's member id is refused (dead-lettered), and B's own
    # member's order, published after it, arrives in B only.
    await publish(stack, order_paid(b, member_a, new_id("ord"), 5_000), order_paid(b, member_b, new_id("ord"), 700))
    wait_until(lambda: points_of(stub, b, member_b).entries, message="B's entry")
    assert points_of(stub, b, member_b).balance == 7
    assert len(points_of(stub, a, member_a).entries) == 0
    assert db.points_entries.count_documents({"member_id": member_a}) == 0


# Pricing for checkout (internal)

def pricing_of(stub, merchant_id, member_id):
    resp = stub.GetMemberPricing(pb.GetMemberPricingRequest(member_id=member_id),
                                 metadata=metadata(merchant_id, service="order"))
    return resp.tier, resp.tier_discount_bp


async def test_member_pricing_follows_growth_within_the_merchant(stack, stub):
    merchant_id, other = new_merchant_id(), new_merchant_id()
    member_id = login(stub, merchant_id, "u-pricing").member.member_id
    assert pricing_of(stub, merchant_id, member_id) == (pb.TIER_REGULAR, 10_000)
    await publish(stack, order_paid(merchant_id, member_id, new_id("ord"), 500_000))  # ¥5,000
    wait_until(lambda: pricing_of(stub, merchant_id, member_id) == (pb.TIER_GOLD, 9_000), message="gold pricing")
    # Growth counts only in its own merchant.
    assert pricing_of(stub, other, member_id) == (pb.TIER_REGULAR, 10_000)

    error = rpc_error(stub.GetMemberPricing, pb.GetMemberPricingRequest(member_id="ord_1"),
                      metadata=metadata(merchant_id, service="order"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and set(field_violations(error)) == {"member_id"}
    for caller in (as_member(merchant_id, member_id), metadata(merchant_id, staff_id=new_id("stf"), roles=("OWNER",))):
        error = rpc_error(stub.GetMemberPricing, pb.GetMemberPricingRequest(member_id=member_id), metadata=caller)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED


# Logout and refresh rotation

def token_version(stub, merchant_id, member_id) -> tuple[int, bool]:
    reply = stub.GetTokenVersions(pb.GetTokenVersionsRequest(
        subjects=[pb.TokenSubject(merchant_id=merchant_id, subject_id=member_id)]), metadata=metadata(service="gateway"))
    (found,) = reply.versions
    return found.version, found.active


def test_member_refresh_tokens_are_single_use_and_logout_ends_every_token(stub):
    merchant_id = new_merchant_id()
    md = metadata(merchant_id, channel="H5")
    first = login(stub, merchant_id, "u-logout")
    member_id = first.member.member_id
    version = jwt.decode(first.access_token, SECRET, algorithms=["HS256"]).get("ver", 0)
    assert token_version(stub, merchant_id, member_id) == (version, True)
    pair = stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=first.refresh_token), metadata=md)
    # The first refresh token is used up.
    error = rpc_error(stub.RefreshToken, pb.RefreshTokenRequest(refresh_token=first.refresh_token), metadata=md)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert token_version(stub, merchant_id, member_id)[0] == version + 1

    again = login(stub, merchant_id, "u-logout")
    stub.Logout(pb.LogoutRequest(refresh_token=again.refresh_token), metadata=as_member(merchant_id, member_id))
    assert token_version(stub, merchant_id, member_id) == (version + 2, True)
    for token in (again.refresh_token, pair.refresh_token):
        error = rpc_error(stub.RefreshToken, pb.RefreshTokenRequest(refresh_token=token), metadata=md)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    # Only the member may log out, and only with their own refresh token.
    other = login(stub, merchant_id, "u-other")
    error = rpc_error(stub.Logout, pb.LogoutRequest(refresh_token=other.refresh_token),
                      metadata=as_member(merchant_id, member_id))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    error = rpc_error(stub.Logout, pb.LogoutRequest(), metadata=md)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert token_version(stub, merchant_id, new_id("mem")) == (0, False)
