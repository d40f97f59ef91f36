"""The points economy over the member service's real gRPC port, MongoDB and NATS: earning
and unfreezing from order events, checkout holds, refunds with owed points, staff
adjustments and audit; and, in process against the same MongoDB, the jobs under a moved
clock, crash repair, races and the database commands each movement costs."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import grpc
import pytest
from siyu.member.v1 import member_pb2 as pb, member_pb2_grpc
from siyu.order.v1 import events_pb2 as order_events, order_pb2

from siyu_kit import db as kit_db
from siyu_kit.config import load
from siyu_kit.events.outbox import make_event
from siyu_kit.ids import new_id
from siyu_kit.metrics import DB_COMMANDS
from siyu_kit.protos import money, timestamp, utcnow
from tests.fakes.callers import caller
from tests.support import (database_fixture, field_violations, metadata, new_merchant_id, reason, rpc_error,
                           stub_fixture, wait_until)
from tests.support.member import login, order_paid, publish

from services.member.adapters import points_store, repositories
from services.member.application.points import PointsEconomy

stub = stub_fixture("member", member_pb2_grpc.MemberServiceStub)
db = database_fixture("member")


@pytest.fixture(scope="module")
def storage(stack):
    settings = load("member")
    kit_db.connect(stack.mongodb_uri, settings.mongodb_db, threads=4, service="points-test")
    return settings


def as_order(merchant_id):
    return metadata(merchant_id, service="order")


def as_staff(merchant_id, *roles):
    return metadata(merchant_id, staff_id=new_id("stf"), roles=roles or ("OPERATOR",))


def order_completed(merchant_id, member_id, order_id, completed_at):
    order = order_pb2.Order(order_id=order_id, member_id=member_id, completed_at=timestamp(completed_at))
    return make_event("siyu.order.order.completed", merchant_id=merchant_id, aggregate_id=order_id,
                      aggregate_version=5, payload=order_events.OrderCompleted(order=order, confirmed_by="MEMBER"),
                      channel="MINI_PROGRAM")


def points(stub, merchant_id, member_id):
    return stub.GetPoints(pb.GetPointsRequest(), metadata=metadata(merchant_id, channel="H5", member_id=member_id))


def credit(stub, merchant_id, member_id, n, key=None):
    return stub.AdjustPoints(pb.AdjustPointsRequest(member_id=member_id, points=n, reason="welcome",
                                                    idempotency_key=key or new_id("k")[-20:]),
                             metadata=as_staff(merchant_id))


def member(stub):
    merchant_id = new_merchant_id()
    return merchant_id, login(stub, merchant_id, f"u-{new_id('u')[-8:]}").member.member_id


async def test_points_of_a_completed_order_unfreeze_when_its_after_sales_window_closes(stack, stub, db):
    merchant_id, member_id = member(stub)
    order_id = new_id("ord")
    await publish(stack, order_paid(merchant_id, member_id, order_id, 12_345))
    wait_until(lambda: points(stub, merchant_id, member_id).frozen == 123, message="frozen points")
    # Completed eight days ago: its window (7 days) has closed, so the job unfreezes it.
    completed = utcnow() - timedelta(days=8)
    event = order_completed(merchant_id, member_id, order_id, completed)
    await publish(stack, event, event)
    # The account moves first and its ledger entry follows in a second write: wait for both.
    mine = wait_until(lambda: (p := points(stub, merchant_id, member_id)).available == 123
                      and len(p.entries) == 2 and p, timeout=30, message="unfrozen points and their entry")
    assert (mine.balance, mine.frozen, mine.held, mine.owed) == (123, 0, 0, 0)
    assert [e.kind for e in mine.entries] == [pb.POINTS_MOVEMENT_UNFREEZE, pb.POINTS_MOVEMENT_EARN]
    assert mine.expiring[0].points == 123
    account = db.points_accounts.find_one({"member_id": member_id, "merchant_id": merchant_id})
    assert account["frozen_lots"] == {} and account["pending_count"] == 0
    # A completion that is still inside its window leaves the points frozen.
    second = new_id("ord")
    await publish(stack, order_paid(merchant_id, member_id, second, 10_000))
    wait_until(lambda: points(stub, merchant_id, member_id).frozen == 100, message="second order's points")
    await publish(stack, order_completed(merchant_id, member_id, second, utcnow()))
    wait_until(lambda: db.points_accounts.find_one({"member_id": member_id}).get("frozen_lots", {}).get(second, {})
               .get("unfreeze_ms"), message="unfreeze time set")
    assert points(stub, merchant_id, member_id).frozen == 100


def test_a_hold_is_spent_or_released_once_by_order_and_refused_with_its_reason(stub, db):
    merchant_id, member_id = member(stub)
    credit(stub, merchant_id, member_id, 1_000)
    paid, cancelled = new_id("ord"), new_id("ord")
    hold = pb.HoldPointsRequest(member_id=member_id, order_id=paid, points=300, payable=10_000)
    first = stub.HoldPoints(hold, metadata=as_order(merchant_id))
    again = stub.HoldPoints(hold, metadata=as_order(merchant_id))
    assert (first.held, first.discount, first.applied) == (300, 300, True) and not again.applied
    spend = pb.SpendHeldPointsRequest(member_id=member_id, order_id=paid)
    assert stub.SpendHeldPoints(spend, metadata=as_order(merchant_id)).spent == 300
    assert not stub.SpendHeldPoints(spend, metadata=as_order(merchant_id)).applied
    stub.HoldPoints(pb.HoldPointsRequest(member_id=member_id, order_id=cancelled, points=200, payable=10_000),
                    metadata=as_order(merchant_id))
    release = pb.ReleaseHeldPointsRequest(member_id=member_id, order_id=cancelled)
    assert stub.ReleaseHeldPoints(release, metadata=as_order(merchant_id)).released == 200
    mine = points(stub, merchant_id, member_id)
    assert (mine.balance, mine.available, mine.held) == (700, 700, 0)
    for request, want in (
            (pb.HoldPointsRequest(member_id=member_id, order_id=new_id("ord"), points=150, payable=10_000),
             "POINTS_STEP"),
            (pb.HoldPointsRequest(member_id=member_id, order_id=new_id("ord"), points=600, payable=1_000),
             "POINTS_OVER_LIMIT"),
            (pb.HoldPointsRequest(member_id=member_id, order_id=new_id("ord"), points=800, payable=100_000),
             "POINTS_INSUFFICIENT"),
            (pb.HoldPointsRequest(member_id=member_id, order_id=cancelled, points=200, payable=10_000),
             "POINTS_HOLD_ENDED")):
        error = rpc_error(stub.HoldPoints, request, metadata=as_order(merchant_id))
        assert (error.code(), reason(error)) == (grpc.StatusCode.FAILED_PRECONDITION, want)
    error = rpc_error(stub.ReleaseHeldPoints, pb.ReleaseHeldPointsRequest(member_id=member_id, order_id=paid),
                      metadata=as_order(merchant_id))
    assert reason(error) == "POINTS_SPENT"
    # Another merchant's order service sees none of these points and moves none.
    elsewhere = new_merchant_id()
    error = rpc_error(stub.HoldPoints, pb.HoldPointsRequest(member_id=member_id, order_id=new_id("ord"), points=100,
                                                            payable=10_000), metadata=as_order(elsewhere))
    assert reason(error) == "POINTS_INSUFFICIENT"
    assert stub.ReleaseHeldPoints(pb.ReleaseHeldPointsRequest(member_id=member_id, order_id=paid),
                                  metadata=as_order(elsewhere)).released == 0
    assert points(stub, merchant_id, member_id).balance == 700
    assert db.points_entries.count_documents({"merchant_id": merchant_id, "member_id": member_id}) == 5


def test_bad_input_is_refused_field_by_field_and_writes_nothing(stub, db):
    merchant_id, member_id = member(stub)
    before = db.points_entries.count_documents({})
    error = rpc_error(stub.HoldPoints, pb.HoldPointsRequest(member_id="mem_x", order_id="x", points=0, payable=-1),
                      metadata=as_order(merchant_id))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {"member_id", "order_id", "points", "payable"} <= set(field_violations(error))
    error = rpc_error(stub.AdjustPoints, pb.AdjustPointsRequest(member_id=member_id, points=5, reason="",
                                                                idempotency_key="no spaces"),
                      metadata=as_staff(merchant_id))
    assert {"reason", "idempotency_key"} <= set(field_violations(error))
    error = rpc_error(stub.ReversePointsForRefund, pb.ReversePointsForRefundRequest(
        member_id=member_id, order_id=new_id("ord"), refund_id="rfd_1", earned_points_to_take_back=-1),
        metadata=as_order(merchant_id))
    assert {"refund_id", "earned_points_to_take_back"} <= set(field_violations(error))
    assert db.points_entries.count_documents({}) == before
    assert db.points_accounts.count_documents({"member_id": member_id}) == 0


def test_internal_rpcs_are_for_services_and_staff_rpcs_for_their_roles(stub):
    merchant_id, member_id = member(stub)
    hold = pb.HoldPointsRequest(member_id=member_id, order_id=new_id("ord"), points=100, payable=10_000)
    as_member = metadata(merchant_id, channel="H5", member_id=member_id)
    assert rpc_error(stub.HoldPoints, hold, metadata=as_member).code() == grpc.StatusCode.PERMISSION_DENIED
    adjust = pb.AdjustPointsRequest(member_id=member_id, points=5, reason="r", idempotency_key="k1")
    assert rpc_error(stub.AdjustPoints, adjust, metadata=as_staff(merchant_id, "GUIDE")).code() == \
        grpc.StatusCode.PERMISSION_DENIED
    assert rpc_error(stub.AdjustPoints, adjust, metadata=as_staff(new_merchant_id())).code() == \
        grpc.StatusCode.NOT_FOUND
    read = pb.GetMemberPointsRequest(member_id=member_id)
    assert rpc_error(stub.GetMemberPoints, read, metadata=as_staff(new_merchant_id(), "FINANCE")).code() == \
        grpc.StatusCode.NOT_FOUND
    assert stub.GetMemberPoints(read, metadata=as_staff(merchant_id, "FINANCE")).audit.consistent


def test_concurrent_holds_against_the_real_store_never_go_below_zero(stub, db):
    merchant_id, member_id = member(stub)
    credit(stub, merchant_id, member_id, 1_000)

    def hold(_):
        try:
            return stub.HoldPoints(pb.HoldPointsRequest(member_id=member_id, order_id=new_id("ord"), points=300,
                                                        payable=100_000), metadata=as_order(merchant_id)).held
        except grpc.RpcError as error:
            return reason(error)

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(hold, range(12)))
    assert 1 <= results.count(300) <= 3 and set(results) <= {300, "POINTS_INSUFFICIENT", "CONCURRENT_UPDATE"}
    held = 300 * results.count(300)
    account = db.points_accounts.find_one({"member_id": member_id})
    assert (account["available"], account["held"], account["balance"]) == (1_000 - held, held, 1_000)
    audit = stub.GetMemberPoints(pb.GetMemberPointsRequest(member_id=member_id), metadata=as_staff(merchant_id))
    assert audit.audit.consistent, audit.audit.problems


async def test_a_refund_takes_back_what_it_can_and_the_rest_is_owed_until_the_next_earning(stack, stub):
    merchant_id, member_id = member(stub)
    earned = new_id("ord")
    await publish(stack, order_paid(merchant_id, member_id, earned, 50_000))
    wait_until(lambda: points(stub, merchant_id, member_id).frozen == 500, message="500 earned")
    await publish(stack, order_completed(merchant_id, member_id, earned, utcnow() - timedelta(days=8)))
    wait_until(lambda: points(stub, merchant_id, member_id).available == 500, timeout=30, message="500 available")
    spent = new_id("ord")
    stub.HoldPoints(pb.HoldPointsRequest(member_id=member_id, order_id=spent, points=400, payable=100_000),
                    metadata=as_order(merchant_id))
    stub.SpendHeldPoints(pb.SpendHeldPointsRequest(member_id=member_id, order_id=spent), metadata=as_order(merchant_id))
    refund = pb.ReversePointsForRefundRequest(member_id=member_id, order_id=earned, refund_id=new_id("rfd"),
                                              earned_points_to_take_back=500)
    first = stub.ReversePointsForRefund(refund, metadata=as_order(merchant_id))
    again = stub.ReversePointsForRefund(refund, metadata=as_order(merchant_id))
    assert (first.entry.points, first.entry.owed_change, first.applied) == (-100, 400, True)
    assert (again.entry.entry_id, again.applied) == (first.entry.entry_id, False)
    mine = points(stub, merchant_id, member_id)
    assert (mine.balance, mine.owed) == (0, 400)
    await publish(stack, order_paid(merchant_id, member_id, new_id("ord"), 30_000))
    wait_until(lambda: points(stub, merchant_id, member_id).owed == 100, message="owed paid down")
    assert points(stub, merchant_id, member_id).balance == 0
    error = rpc_error(stub.ReversePointsForRefund, pb.ReversePointsForRefundRequest(
        member_id=member_id, order_id=earned, refund_id=new_id("rfd"), earned_points_to_take_back=1),
        metadata=as_order(merchant_id))
    assert reason(error) == "POINTS_REVERSAL_TOO_LARGE"


async def test_refunds_in_proportion_take_back_exactly_what_was_earned(stack, stub):
    merchant_id, member_id = member(stub)
    order_id = new_id("ord")
    await publish(stack, order_paid(merchant_id, member_id, order_id, 9_999))  # 99 points
    wait_until(lambda: points(stub, merchant_id, member_id).frozen == 99, message="earned")
    taken = []
    for part in (4_999, 5_000):
        taken.append(stub.ReversePointsForRefund(pb.ReversePointsForRefundRequest(
            member_id=member_id, order_id=order_id, refund_id=new_id("rfd"), refunded_amount=part,
            paid_amount=9_999), metadata=as_order(merchant_id)).entry.points)
    assert taken == [-49, -50]
    mine = points(stub, merchant_id, member_id)
    assert (mine.balance, mine.frozen, mine.owed) == (0, 0, 0)


def test_staff_adjust_history_pages_and_settings_feed_the_quote_terms(stub):
    merchant_id = stub.UpsertMerchant(pb.UpsertMerchantRequest(code=f"pts-{new_id('c')[-8:].lower()}", name="Tea"),
                                      metadata=metadata(service="ops")).merchant.merchant_id
    member_id = login(stub, merchant_id, "u-settings").member.member_id
    first = credit(stub, merchant_id, member_id, 500, key="gift-1")
    again = credit(stub, merchant_id, member_id, 500, key="gift-1")
    assert first.applied and not again.applied and again.entry.entry_id == first.entry.entry_id
    for _ in range(3):
        credit(stub, merchant_id, member_id, 100)
    as_member = metadata(merchant_id, channel="H5", member_id=member_id)
    page = stub.ListMyPointsHistory(pb.ListMyPointsHistoryRequest(page_size=3), metadata=as_member)
    rest = stub.ListMyPointsHistory(pb.ListMyPointsHistoryRequest(page_size=3, page_token=page.next_page_token),
                                    metadata=as_member)
    assert len(page.entries) == 3 and len(rest.entries) == 1 and not rest.next_page_token
    assert rest.entries[0].reason == "welcome" and rest.entries[0].kind == pb.POINTS_MOVEMENT_ADJUST
    staff = as_staff(merchant_id)
    current = stub.GetPointsSettings(pb.GetPointsSettingsRequest(), metadata=staff)
    assert (current.settings.points_per_yuan, current.settings.max_share_bp, current.settings.after_sales_days) == \
        (100, 5_000, 7)
    changed = pb.PointsSettings(points_per_yuan=100, min_points=100, max_share_bp=2_000, step=100, expiry_years=1,
                                after_sales_days=7)
    stub.UpdatePointsSettings(pb.UpdatePointsSettingsRequest(settings=changed, expected_version=current.version),
                              metadata=staff)
    stale = rpc_error(stub.UpdatePointsSettings, pb.UpdatePointsSettingsRequest(
        settings=changed, expected_version=current.version), metadata=staff)
    assert stale.code() == grpc.StatusCode.ABORTED
    terms = stub.GetPointsTerms(pb.GetPointsTermsRequest(member_id=member_id, payable=1_000),
                                metadata=as_order(merchant_id))
    assert (terms.available, terms.max_usable, terms.max_discount) == (800, 200, 200)


# ---- in process, against the same MongoDB -------------------------------------------------

def economy(shift: timedelta = timedelta(0)) -> PointsEconomy:
    return PointsEconomy(repositories.MemberRepository(), repositories.MerchantRepository(),
                         points_store.PointsStore(), repositories.AuditLogRepository(),
                         clock=lambda: utcnow() + shift)


async def test_three_copies_of_the_expiry_job_expire_a_lot_once(stub, storage, db):
    merchant_id, member_id = member(stub)
    credit(stub, merchant_id, member_id, 700)
    later = economy(timedelta(days=800))  # past the end of next year
    moved = await asyncio.gather(later.expire_due(), later.expire_due(), later.expire_due())
    assert sum(moved) >= 1
    entries = list(db.points_entries.find({"merchant_id": merchant_id, "member_id": member_id, "kind": "EXPIRE"}))
    assert [e["points"] for e in entries] == [-700]
    mine = points(stub, merchant_id, member_id)
    assert (mine.balance, mine.available, len(mine.expiring)) == (0, 0, 0)


async def test_a_crash_between_the_account_and_the_ledger_is_repaired(stub, storage, db, monkeypatch):
    merchant_id, member_id = member(stub)
    credit(stub, merchant_id, member_id, 1_000)

    def crash(*args, **kwargs):
        raise RuntimeError("the process died here")

    monkeypatch.setattr(points_store, "_store_owed", crash)
    with caller(merchant_id, service="order"), pytest.raises(RuntimeError):
        await economy().hold(member_id, new_id("ord"), 300, 10_000)
    monkeypatch.undo()
    assert db.points_accounts.find_one({"member_id": member_id})["pending_count"] == 1
    audit = stub.GetMemberPoints(pb.GetMemberPointsRequest(member_id=member_id), metadata=as_staff(merchant_id))
    assert not audit.audit.consistent  # the ledger is one entry short…
    assert await economy(timedelta(seconds=31)).repair() >= 1
    audit = stub.GetMemberPoints(pb.GetMemberPointsRequest(member_id=member_id), metadata=as_staff(merchant_id))
    assert audit.audit.consistent and audit.account.held == 300  # …until the repair stores it


async def test_database_commands_per_movement(stub, storage):
    merchant_id, member_id = member(stub)
    credit(stub, merchant_id, member_id, 1_000)
    counter = DB_COMMANDS.labels("points-test", "background")
    cases = economy()
    order_id = new_id("ord")
    await cases.terms(merchant_id)  # as on a busy process: the merchant's terms are in memory
    with caller(merchant_id, service="order"):
        # …and each collection was used before (its indexes ensured once per process).
        warm = new_id("ord")
        await cases.hold(member_id, warm, 300, 10_000)
        await cases.spend(member_id, warm)
        before = counter._value.get()
        await cases.hold(member_id, order_id, 300, 10_000)
        hold = counter._value.get() - before
        before = counter._value.get()
        await cases.spend(member_id, order_id)
        spend = counter._value.get() - before
        before = counter._value.get()
        await cases.hold(member_id, order_id, 300, 10_000)
        replay = counter._value.get() - before
    # the account, the guarded update, the entry, clearing the debt (the merchant's terms
    # are kept a few seconds)
    assert (hold, spend) == (4, 4), (hold, spend)
    assert replay <= 3


async def test_an_account_opens_from_the_ledger_written_before_accounts(stack, stub, db):
    merchant_id, member_id = member(stub)
    order_id = new_id("ord")
    db.points_entries.insert_one({"_id": new_id("pte"), "merchant_id": merchant_id, "member_id": member_id,
                                  "source": "ORDER", "source_id": order_id, "points": 88, "growth": 88, "frozen": 1,
                                  "frozen_until": datetime(2025, 3, 8, tzinfo=timezone.utc),
                                  "created_at": datetime(2025, 3, 1, tzinfo=timezone.utc)})
    assert (points(stub, merchant_id, member_id).balance, points(stub, merchant_id, member_id).frozen) == (88, 88)
    # A replay of its payment adds nothing; its completion unfreezes it.
    await publish(stack, order_paid(merchant_id, member_id, order_id, 8_800),
                  order_completed(merchant_id, member_id, order_id, utcnow() - timedelta(days=8)))
    mine = wait_until(lambda: (p := points(stub, merchant_id, member_id)).available == 88 and p,
                      message="legacy points unfrozen")
    assert (mine.balance, mine.frozen) == (88, 0)
    # The unfreezing's entry follows the account's move in a second write.
    wait_until(lambda: db.points_entries.count_documents({"merchant_id": merchant_id, "source_id": order_id}) == 2,
               message="the legacy entry and its unfreezing")
    assert money(1).amount == 1


async def test_concurrent_holds_in_one_process_never_go_below_zero(stub, storage, db):
    merchant_id, member_id = member(stub)
    credit(stub, merchant_id, member_id, 1_000)
    cases = economy()

    async def hold():
        with caller(merchant_id, service="order"):
            try:
                return (await cases.hold(member_id, new_id("ord"), 200, 100_000))[0]
            except Exception as error:  # noqa: BLE001 - the refusal is the answer
                return getattr(error, "reason", repr(error))

    results = await asyncio.gather(*(hold() for _ in range(10)))
    # Five fit; a hold that lost its guard eight times answers CONCURRENT_UPDATE instead.
    assert 1 <= results.count(200) <= 5 and set(results) <= {200, "POINTS_INSUFFICIENT", "CONCURRENT_UPDATE"}
    account = db.points_accounts.find_one({"member_id": member_id})
    assert (account["available"], account["held"]) == (1_000 - 200 * results.count(200), 200 * results.count(200))


async def test_a_refund_takes_back_the_growth_of_the_refunded_part_and_the_tier_follows(stack, stub, db):
    merchant_id, member_id = member(stub)
    order_id = new_id("ord")
    as_member = metadata(merchant_id, channel="H5", member_id=member_id)
    await publish(stack, order_paid(merchant_id, member_id, order_id, 150_000))  # ¥1,500: SILVER
    wait_until(lambda: stub.GetMyTier(pb.GetMyTierRequest(), metadata=as_member).growth_value == 1_500,
               message="growth earned")
    assert stub.GetMyTier(pb.GetMyTierRequest(), metadata=as_member).tier == pb.TIER_SILVER
    refund = pb.ReversePointsForRefundRequest(member_id=member_id, order_id=order_id, refund_id=new_id("rfd"),
                                              refunded_amount=60_000, paid_amount=150_000)
    first = stub.ReversePointsForRefund(refund, metadata=as_order(merchant_id))
    again = stub.ReversePointsForRefund(refund, metadata=as_order(merchant_id))
    assert (first.entry.growth_change, first.applied, again.applied) == (-600, True, False)
    mine = stub.GetMyTier(pb.GetMyTierRequest(), metadata=as_member)
    assert (mine.growth_value, mine.tier) == (900, pb.TIER_REGULAR)
    # The member document the staff search by tier reads follows the ledger down too.
    assert db.members.find_one({"_id": member_id})["growth"] == 900
