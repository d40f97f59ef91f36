"""Access rules come from the `(siyu.common.v1.access)` option of each RPC."""
from __future__ import annotations

import pytest
# Importing the generated modules registers their services in the descriptor pool.
from siyu.catalog.v1 import catalog_pb2  # noqa: F401
from siyu.member.v1 import member_pb2  # noqa: F401
from siyu.order.v1 import order_pb2  # noqa: F401

from siyu_kit import access
from siyu_kit.access import Rule
from siyu_kit.context import RequestContext
from siyu_kit.errors import PermissionDenied, Unauthenticated


def test_rules_are_read_from_the_protos():
    assert access.rule_for_path("/siyu.order.v1.OrderService/PlaceOrder") == Rule("MEMBER")
    assert access.rule_for_path("/siyu.catalog.v1.CatalogService/UpsertProduct") == Rule("STAFF", ("OPERATOR",))
    assert access.rule_for_path("/siyu.member.v1.MemberService/ResolveApiKey") == Rule("INTERNAL")


def test_an_unknown_rpc_is_an_error_not_a_free_pass():
    with pytest.raises(KeyError):
        access.rule_for_path("/siyu.order.v1.OrderService/NoSuchRpc")


MEMBER = RequestContext(merchant_id="mch_1", channel="H5", caller_kind="member", caller_id="mem_1")
MEMBER_NO_CHANNEL = RequestContext(merchant_id="mch_1", caller_kind="member", caller_id="mem_1")
CHANNEL_ONLY = RequestContext(merchant_id="mch_1", channel="MINI_PROGRAM")
OPERATOR = RequestContext(merchant_id="mch_1", caller_kind="staff", caller_id="stf_1", roles=("OPERATOR",))
OWNER = RequestContext(merchant_id="mch_1", caller_kind="staff", caller_id="stf_2", roles=("OWNER",))
GUIDE = RequestContext(merchant_id="mch_1", caller_kind="staff", caller_id="stf_3", roles=("GUIDE",))
SERVICE = RequestContext(merchant_id="mch_1", calling_service="order")
NOBODY = RequestContext()


@pytest.mark.parametrize("rule, ctx", [
    (Rule("PUBLIC"), NOBODY),
    (Rule("CHANNEL"), CHANNEL_ONLY),
    (Rule("CHANNEL"), MEMBER),
    (Rule("MEMBER"), MEMBER),
    (Rule("STAFF", ("OPERATOR",)), OPERATOR),
    (Rule("STAFF", ("OPERATOR",)), OWNER),
    (Rule("STAFF"), GUIDE),
    (Rule("INTERNAL"), SERVICE),
    (Rule("MEMBER"), SERVICE),
])
def test_check_accepts(rule, ctx):
    access.check(rule, ctx)


@pytest.mark.parametrize("rule, ctx, error", [
    (Rule("CHANNEL"), NOBODY, Unauthenticated),
    (Rule("CHANNEL"), OPERATOR, Unauthenticated),
    (Rule("MEMBER"), CHANNEL_ONLY, Unauthenticated),
    (Rule("MEMBER"), MEMBER_NO_CHANNEL, Unauthenticated),
    (Rule("MEMBER"), OPERATOR, Unauthenticated),
    (Rule("STAFF", ("OPERATOR",)), GUIDE, PermissionDenied),
    (Rule("STAFF", ("OPERATOR",)), MEMBER, Unauthenticated),
    (Rule("STAFF"), NOBODY, Unauthenticated),
    (Rule("INTERNAL"), OWNER, PermissionDenied),
    (Rule("INTERNAL"), MEMBER, PermissionDenied),
])
def test_check_denies(rule, ctx, error):
    with pytest.raises(error):
        access.check(rule, ctx)
