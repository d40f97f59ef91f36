"""The order service's read of a member's WeChat openid (the payer of a JSAPI payment)
over the member service's real gRPC port: per channel, after a sandbox or a WeChat login
through the stand-in, only among the calling merchant's members, and only for services."""
from __future__ import annotations

import uuid

import grpc
import httpx
import pytest
from siyu.common.v1 import common_pb2
from siyu.member.v1 import member_pb2 as pb, member_pb2_grpc

from services.member.domain.identity import sandbox_openid
from siyu_kit.ids import new_id
from tests.support import field_violations, metadata, new_merchant_id, reason, rpc_error, stub_fixture
from tests.support.member import login

stub = stub_fixture("member", member_pb2_grpc.MemberServiceStub)


def _ask(member_id: str, channel: str) -> pb.GetWechatOpenidRequest:
    return pb.GetWechatOpenidRequest(member_id=member_id, channel=channel)


def test_the_openid_of_each_channel_the_member_signed_in_on(stub):
    merchant_id, unionid = new_merchant_id(), "u-" + uuid.uuid4().hex[:10]
    member_id = login(stub, merchant_id, unionid, ch="MINI_PROGRAM").member.member_id
    as_order = metadata(merchant_id, service="order")
    mini = stub.GetWechatOpenid(_ask(member_id, "MINI_PROGRAM"), metadata=as_order)
    assert mini.openid == sandbox_openid("MINI_PROGRAM", unionid)
    missing = rpc_error(stub.GetWechatOpenid, _ask(member_id, "H5"), metadata=as_order)
    assert (missing.code(), reason(missing)) == (grpc.StatusCode.NOT_FOUND, "NO_WECHAT_IDENTITY")
    assert login(stub, merchant_id, unionid, ch="H5").member.member_id == member_id
    assert stub.GetWechatOpenid(_ask(member_id, "H5"), metadata=as_order).openid == sandbox_openid("H5", unionid)


def test_a_wechat_login_gives_wechats_openid(stub, stack):
    merchant_id, tag = new_merchant_id(), uuid.uuid4().hex[:10]
    appid, secret = f"wxoid{tag}", f"oid_secret_{tag}_x"
    httpx.post(stack.wechat_url + "/_standin/apps", json={"appid": appid, "secret": secret}).raise_for_status()
    owner = metadata(merchant_id, staff_id=new_id("stf"), roles=("OWNER",))
    stub.SetWeChatApp(pb.SetWeChatAppRequest(channel=common_pb2.CHANNEL_MINI_PROGRAM, appid=appid,
                                             app_secret=secret), metadata=owner)
    code = httpx.post(stack.wechat_url + "/_standin/codes", json={
        "appid": appid, "openid": "o-pay-" + tag, "unionid": "u-pay-" + tag}).json()["code"]
    member_id = stub.Login(pb.LoginRequest(code=code), metadata=metadata(merchant_id, channel="MINI_PROGRAM")
                           ).member.member_id
    found = stub.GetWechatOpenid(_ask(member_id, "MINI_PROGRAM"), metadata=metadata(merchant_id, service="order"))
    assert found.openid == "o-pay-" + tag


def test_another_merchants_member_or_an_unknown_member_is_not_found(stub):
    merchant_id = new_merchant_id()
    member_id = login(stub, merchant_id, "u-" + uuid.uuid4().hex[:10]).member.member_id
    for who, merchant in ((member_id, new_merchant_id()), (new_id("mem"), merchant_id)):
        error = rpc_error(stub.GetWechatOpenid, _ask(who, "H5"), metadata=metadata(merchant, service="order"))
        assert (error.code(), reason(error)) == (grpc.StatusCode.NOT_FOUND, "NO_WECHAT_IDENTITY")


def test_members_and_staff_cannot_ask(stub):
    merchant_id = new_merchant_id()
    member_id = login(stub, merchant_id, "u-" + uuid.uuid4().hex[:10]).member.member_id
    for caller in (metadata(merchant_id, channel="H5", member_id=member_id),
                   metadata(merchant_id, staff_id=new_id("stf"), roles=("OWNER",)),
                   metadata(merchant_id, channel="H5")):
        error = rpc_error(stub.GetWechatOpenid, _ask(member_id, "H5"), metadata=caller)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("member_id, channel, fields", [
    ("", "H5", {"member_id"}),
    ("stf_01J00000000000000000000000", "H5", {"member_id"}),
    (None, "LIVE", {"channel"}),
    (None, "", {"channel"}),
    ("mem_x", "mini_program", {"member_id", "channel"}),
])
def test_bad_ids_are_field_violations(stub, member_id, channel, fields):
    merchant_id = new_merchant_id()
    if member_id is None:
        member_id = login(stub, merchant_id, "u-" + uuid.uuid4().hex[:10]).member.member_id
    error = rpc_error(stub.GetWechatOpenid, _ask(member_id, channel), metadata=metadata(merchant_id, service="order"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == fields
