"""The request context survives the trip through gRPC metadata."""
from __future__ import annotations

import pytest

from siyu_kit import context, trust
from siyu_kit.context import RequestContext
from siyu_kit.errors import PermissionDenied, Unauthenticated
from siyu_kit.ids import is_id


def test_member_context_round_trips_through_metadata():
    ctx = RequestContext(request_id="req_1", merchant_id="mch_1", channel="H5", caller_kind="member",
                         caller_id="mem_1")
    assert RequestContext.from_metadata(ctx.to_metadata()) == ctx


def test_staff_context_with_roles_and_calling_service_round_trips():
    ctx = RequestContext(request_id="req_2", merchant_id="mch_2", caller_kind="staff", caller_id="stf_9",
                         roles=("OPERATOR", "FINANCE"))
    back = RequestContext.from_metadata(ctx.to_metadata("order"))
    assert back.roles == ("OPERATOR", "FINANCE")
    assert back.calling_service == "order"
    assert back.caller_kind == "staff" and back.caller_id == "stf_9"
    assert back.merchant_id == "mch_2"


def test_empty_fields_are_left_out_and_a_request_id_is_always_made():
    md = RequestContext().to_metadata()
    assert [k for k, _ in md] == [context.MD_REQUEST_ID, trust.MD_ASSERTION]
    assert is_id(dict(md)[context.MD_REQUEST_ID], "req")
    back = RequestContext.from_metadata(())
    assert is_id(back.request_id, "req")
    assert back.merchant_id == "" and back.caller_kind == "" and back.roles == ()


def test_a_caller_without_an_id_is_nobody():
    back = RequestContext.from_metadata(((context.MD_CALLER, "member:"),))
    assert back.caller_kind == "" and back.caller_id == ""


def test_require_rules():
    member = RequestContext(merchant_id="mch_1", channel="H5", caller_kind="member", caller_id="mem_1")
    assert member.require_member() == "mem_1"
    assert member.require_merchant() == "mch_1"
    with pytest.raises(Unauthenticated):
        member.require_staff()
    with pytest.raises(Unauthenticated):
        RequestContext(caller_kind="member", caller_id="mem_1").require_member()  # no merchant
    staff = RequestContext(merchant_id="mch_1", caller_kind="staff", caller_id="stf_1", roles=("GUIDE",))
    assert staff.require_staff() == "stf_1"
    assert staff.require_staff("GUIDE", "OPERATOR") == "stf_1"
    with pytest.raises(PermissionDenied):
        staff.require_staff("OPERATOR")
    owner = RequestContext(merchant_id="mch_1", caller_kind="staff", caller_id="stf_2", roles=("OWNER",))
    assert owner.require_staff("FINANCE") == "stf_2"


def test_use_and_reset_set_the_current_context():
    ctx = RequestContext(merchant_id="mch_9")
    token = context.use(ctx)
    try:
        assert context.current() is ctx
    finally:
        context.reset(token)
    assert context.current().merchant_id == ""
