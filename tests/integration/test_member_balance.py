"""Stored value over the member service's real gRPC port, MongoDB and NATS: recharge
packages, recharges credited once from order.paid events (and earning no points), the
order service's holds, captures, releases and refunds with their replays, racing holds,
finance's recharge refund, the ledger equal to the balance, the balance events, and what
bad input, other merchants and wrong roles get.

The order service's side of a recharge refund (RefundRechargeOrder) is another piece of
work: here the refund is checked up to REFUNDING, the state it keeps until the order
service confirms."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import grpc
import nats
import pytest
from siyu.member.v1 import events_pb2, member_pb2 as pb, member_pb2_grpc
from siyu.order.v1 import events_pb2 as order_events, order_pb2

from siyu_kit import clients, db as kit_db
from siyu_kit.config import load
from siyu_kit.events.outbox import decode, make_event
from siyu_kit.ids import new_id
from siyu_kit.metrics import DB_COMMANDS
from siyu_kit.protos import money, timestamp, utcnow
from tests.fakes.callers import caller
from tests.support import (database_fixture, field_violations, metadata, new_merchant_id, reason, rpc_error,
                           stub_fixture, wait_until)
from tests.support.member import login, order_paid, publish

from services.member.adapters import repositories, stored_value_store
from services.member.adapters.order_refunds import OrderRefundsClient
from services.member.application.stored_value import StoredValue

stub = stub_fixture("member", member_pb2_grpc.MemberServiceStub)
db = database_fixture("member")


def staff(mid, role="OPERATOR"):
    return metadata(mid, staff_id=new_id("stf"), roles=(role,))


def as_member(mid, member_id):
    return metadata(mid, channel="H5", member_id=member_id)


def order_service(mid):
    return metadata(mid, service="order")


def member(stub, mid) -> str:
    return login(stub, mid, f"u-{new_id('u')[-8:]}").member.member_id


def recharge_paid(mid, member_id, order_id, principal, bonus, package_id=None):
    order = order_pb2.Order(order_id=order_id, member_id=member_id, payable=money(principal),
                            paid_at=timestamp(datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc)))
    paid = order_events.OrderPaid(order=order, recharge=order_events.RechargeDetail(
        package_id=package_id or new_id("rcp"), principal=principal, bonus=bonus))
    return make_event("siyu.order.order.paid", merchant_id=mid, aggregate_id=order_id, aggregate_version=2,
                      payload=paid, channel="MINI_PROGRAM")


def balance(stub, mid, member_id) -> pb.Balance:
    return stub.GetMyBalance(pb.GetMyBalanceRequest(), metadata=as_member(mid, member_id)).balance


async def recharged(stack, stub, mid, member_id, principal=10_000, bonus=2_000) -> pb.Recharge:
    """A recharge credited from its order.paid event."""
    order_id = new_id("ord")
    before = balance(stub, mid, member_id).available
    await publish(stack, recharge_paid(mid, member_id, order_id, principal, bonus))
    wait_until(lambda: balance(stub, mid, member_id).available == before + principal + bonus, message="credited")
    recharges = stub.GetMemberBalance(pb.GetMemberBalanceRequest(member_id=member_id),
                                      metadata=staff(mid, "FINANCE")).recharges
    return next(r for r in recharges if r.order_id == order_id)


def ledger_total(db, mid, member_id) -> int:
    return sum(e["principal"] + e["bonus"] for e in db.balance_entries.find({"merchant_id": mid,
                                                                             "member_id": member_id}))


def test_packages_are_created_once_offered_cheapest_first_and_withdrawn(stub):
    mid = new_merchant_id()
    alice = member(stub, mid)
    big = stub.CreateRechargePackage(pb.CreateRechargePackageRequest(name="充500送150", price=50_000, bonus=15_000,
                                                                     idempotency_key="big"), metadata=staff(mid))
    again = stub.CreateRechargePackage(pb.CreateRechargePackageRequest(name="other", price=100, bonus=0,
                                                                       idempotency_key="big"), metadata=staff(mid))
    small = stub.CreateRechargePackage(pb.CreateRechargePackageRequest(name="充100送20", price=10_000, bonus=2_000,
                                                                       idempotency_key="small"),
                                       metadata=staff(mid, "OWNER"))
    assert again.package == big.package and big.package.package_id.startswith("rcp_")
    assert big.package.state == pb.RECHARGE_PACKAGE_STATE_ACTIVE
    mine = stub.GetMyBalance(pb.GetMyBalanceRequest(), metadata=as_member(mid, alice))
    assert [p.package_id for p in mine.packages] == [small.package.package_id, big.package.package_id]
    assert mine.balance == pb.Balance()
    stub.SetRechargePackageState(pb.SetRechargePackageStateRequest(
        package_id=small.package.package_id, state=pb.RECHARGE_PACKAGE_STATE_INACTIVE), metadata=staff(mid))
    mine = stub.GetMyBalance(pb.GetMyBalanceRequest(), metadata=as_member(mid, alice))
    assert [p.package_id for p in mine.packages] == [big.package.package_id]
    listed = stub.ListRechargePackages(pb.ListRechargePackagesRequest(page_size=1), metadata=staff(mid, "FINANCE"))
    rest = stub.ListRechargePackages(pb.ListRechargePackagesRequest(page_size=1, page_token=listed.next_page_token),
                                     metadata=staff(mid, "FINANCE"))
    assert [p.package_id for p in listed.packages] + [p.package_id for p in rest.packages] == \
        [small.package.package_id, big.package.package_id] and rest.next_page_token == ""
    error = rpc_error(stub.GetRechargePackage, pb.GetRechargePackageRequest(package_id=small.package.package_id),
                      metadata=order_service(mid))
    assert (error.code(), reason(error)) == (grpc.StatusCode.NOT_FOUND, "RECHARGE_PACKAGE_NOT_FOUND")
    got = stub.GetRechargePackage(pb.GetRechargePackageRequest(package_id=big.package.package_id),
                                  metadata=order_service(mid))
    assert (got.package.price, got.package.bonus) == (50_000, 15_000)


async def test_a_paid_recharge_is_credited_once_and_earns_no_points(stack, stub, db):
    mid = new_merchant_id()
    alice = member(stub, mid)
    order_id = new_id("ord")
    event = recharge_paid(mid, alice, order_id, 10_000, 2_000)
    # The same event twice, and the order's payment told again under another event id.
    await publish(stack, event, event, recharge_paid(mid, alice, order_id, 10_000, 2_000))
    wait_until(lambda: balance(stub, mid, alice).available == 12_000, message="credited")
    # An order of goods paid after it earns its points; the recharge earned none.
    goods = new_id("ord")
    await publish(stack, order_paid(mid, alice, goods, 5_000))
    points = wait_until(lambda: (p := stub.GetPoints(pb.GetPointsRequest(), metadata=as_member(mid, alice)))
                        .balance and p, message="the goods order's points")
    assert {e.source_id for e in points.entries} == {goods}
    mine = balance(stub, mid, alice)
    assert (mine.principal, mine.bonus, mine.available, mine.held) == (10_000, 2_000, 12_000, 0)
    staff_view = stub.GetMemberBalance(pb.GetMemberBalanceRequest(member_id=alice), metadata=staff(mid, "FINANCE"))
    [recharge] = staff_view.recharges
    assert (recharge.order_id, recharge.principal, recharge.bonus, recharge.state) == \
        (order_id, 10_000, 2_000, pb.RECHARGE_STATE_CREDITED)
    assert recharge.recharge_id.startswith("rch_")
    history = stub.ListMyBalanceHistory(pb.ListMyBalanceHistoryRequest(), metadata=as_member(mid, alice))
    assert [(e.kind, e.principal, e.bonus, e.cause_id) for e in history.entries] == \
        [(pb.BALANCE_ENTRY_KIND_RECHARGE, 10_000, 2_000, order_id)]
    assert db.balance_recharges.find_one({"_id": recharge.recharge_id})["member_id"] == alice


async def test_holds_captures_releases_and_refunds_answer_replays_and_keep_the_ledger(stack, stub, db):
    mid = new_merchant_id()
    alice = member(stub, mid)
    await recharged(stack, stub, mid, alice, 10_000, 2_000)
    paid, unpaid = new_id("ord"), new_id("ord")
    hold = pb.HoldBalanceRequest(member_id=alice, order_id=paid, max_amount=6_000)
    first = stub.HoldBalance(hold, metadata=order_service(mid))
    assert (first.held, first.principal, first.bonus, first.applied) == (6_000, 5_000, 1_000, True)
    again = stub.HoldBalance(hold, metadata=order_service(mid))
    assert (again.held, again.applied) == (6_000, False)
    assert balance(stub, mid, alice).held == 6_000
    capture = pb.CaptureBalanceRequest(member_id=alice, order_id=paid)
    captured = stub.CaptureBalance(capture, metadata=order_service(mid))
    assert (captured.spent, captured.applied) == (6_000, True)
    repeat = stub.CaptureBalance(capture, metadata=order_service(mid))
    assert (repeat.spent, repeat.applied) == (6_000, False)
    ended = rpc_error(stub.HoldBalance, hold, metadata=order_service(mid))
    assert (ended.code(), reason(ended)) == (grpc.StatusCode.FAILED_PRECONDITION, "BALANCE_HOLD_ENDED")
    stub.HoldBalance(pb.HoldBalanceRequest(member_id=alice, order_id=unpaid, max_amount=100),
                     metadata=order_service(mid))
    release = pb.ReleaseBalanceRequest(member_id=alice, order_id=unpaid)
    assert stub.ReleaseBalance(release, metadata=order_service(mid)).released == 100
    assert not stub.ReleaseBalance(release, metadata=order_service(mid)).applied
    late = new_id("ord")
    marker = stub.ReleaseBalance(pb.ReleaseBalanceRequest(member_id=alice, order_id=late), metadata=order_service(mid))
    assert (marker.released, marker.applied) == (0, True)
    refused = rpc_error(stub.HoldBalance, pb.HoldBalanceRequest(member_id=alice, order_id=late, max_amount=1),
                        metadata=order_service(mid))
    assert reason(refused) == "BALANCE_HOLD_ENDED"
    not_held = rpc_error(stub.CaptureBalance, pb.CaptureBalanceRequest(member_id=alice, order_id=new_id("ord")),
                         metadata=order_service(mid))
    assert reason(not_held) == "BALANCE_NOT_HELD"
    refunds = [new_id("rfd") for _ in range(3)]
    back = [stub.RefundToBalance(pb.RefundToBalanceRequest(member_id=alice, order_id=paid, refund_id=r, amount=2_000),
                                 metadata=order_service(mid)) for r in refunds]
    replay = stub.RefundToBalance(pb.RefundToBalanceRequest(member_id=alice, order_id=paid, refund_id=refunds[0],
                                                            amount=2_000), metadata=order_service(mid))
    assert (replay.principal, replay.bonus, replay.applied) == (back[0].principal, back[0].bonus, False)
    assert (sum(b.principal for b in back), sum(b.bonus for b in back)) == (5_000, 1_000)
    too_much = rpc_error(stub.RefundToBalance, pb.RefundToBalanceRequest(member_id=alice, order_id=paid,
                                                                         refund_id=new_id("rfd"), amount=1),
                         metadata=order_service(mid))
    assert reason(too_much) == "BALANCE_REFUND_TOO_LARGE"
    mine = balance(stub, mid, alice)
    assert (mine.principal, mine.bonus, mine.held) == (10_000, 2_000, 0)
    wait_until(lambda: db.balance_accounts.find_one({"member_id": alice})["pending_count"] == 0,
               message="entries stored")
    assert ledger_total(db, mid, alice) == mine.available + mine.held
    kinds = [e.kind for e in stub.ListMemberBalanceHistory(pb.ListMemberBalanceHistoryRequest(member_id=alice),
                                                           metadata=staff(mid, "FINANCE")).entries]
    assert kinds == [pb.BALANCE_ENTRY_KIND_ORDER_REFUND] * 3 + [pb.BALANCE_ENTRY_KIND_ORDER_PAYMENT,
                                                                pb.BALANCE_ENTRY_KIND_RECHARGE]
    # Each movement of the balance was published once, with what it moved.
    nc = await nats.connect(stack.nats_url)
    seen: list[tuple[str, int]] = []
    try:
        sub = await nc.jetstream().pull_subscribe("siyu.member.balance.>", stream="SIYU_MEMBER")
        for _ in range(60):
            try:
                for msg in await sub.fetch(batch=500, timeout=0.5):
                    envelope = decode(msg.data)
                    changed = events_pb2.BalanceChanged()
                    assert envelope.payload.Unpack(changed)
                    if changed.member_id == alice:
                        seen.append((envelope.type, changed.principal + changed.bonus + changed.held_principal
                                     + changed.held_bonus))
                    await msg.ack()
            except nats.errors.TimeoutError:
                pass
            if len(seen) >= 8:
                break
    finally:
        await nc.close()
    assert sorted(seen) == sorted([("siyu.member.balance.recharged", 12_000), ("siyu.member.balance.held", 0),
                                   ("siyu.member.balance.spent", -6_000), ("siyu.member.balance.held", 0),
                                   ("siyu.member.balance.released", 0)]
                                  + [("siyu.member.balance.refunded", 2_000)] * 3)


async def test_concurrent_holds_never_take_the_balance_below_zero(stack, stub, db):
    mid = new_merchant_id()
    alice = member(stub, mid)
    await recharged(stack, stub, mid, alice, 7_000, 3_001)

    def hold(_):
        try:
            return stub.HoldBalance(pb.HoldBalanceRequest(member_id=alice, order_id=new_id("ord"), max_amount=700),
                                    metadata=order_service(mid)).held
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.ABORTED  # lost its guard too often: asked to try again
            return 0

    with ThreadPoolExecutor(max_workers=16) as pool:
        held = sum(pool.map(hold, range(32)))
    account = db.balance_accounts.find_one({"merchant_id": mid, "member_id": alice})
    assert account["principal"] >= 0 and account["bonus"] >= 0
    assert account["held_principal"] + account["held_bonus"] == held
    assert account["principal"] + account["bonus"] + held == 10_001
    assert held == 10_001  # 32 orders asked for 22,400: everything there was got held


async def test_finance_refunds_an_unspent_recharge_and_not_a_spent_one(stack, stub, db):
    mid = new_merchant_id()
    alice = member(stub, mid)
    kept = await recharged(stack, stub, mid, alice, 10_000, 2_000)
    refund = pb.RefundRechargeRequest(recharge_id=kept.recharge_id, reason="member asked", idempotency_key="r1")
    done = stub.RefundRecharge(refund, metadata=staff(mid, "FINANCE"))
    # The balance is debited at once; the provider refund waits for the order service.
    assert done.recharge.state == pb.RECHARGE_STATE_REFUNDING
    assert (done.balance.principal, done.balance.bonus) == (0, 0)
    assert stub.RefundRecharge(refund, metadata=staff(mid, "FINANCE")).recharge.state == pb.RECHARGE_STATE_REFUNDING
    twice = rpc_error(stub.RefundRecharge, pb.RefundRechargeRequest(recharge_id=kept.recharge_id, reason="again",
                                                                    idempotency_key="r2"),
                      metadata=staff(mid, "FINANCE"))
    assert (twice.code(), reason(twice)) == (grpc.StatusCode.FAILED_PRECONDITION, "RECHARGE_ALREADY_REFUNDED")
    account = db.balance_accounts.find_one({"merchant_id": mid, "member_id": alice})
    assert account["refunding_count"] == 1
    spent = await recharged(stack, stub, mid, alice, 5_000, 500)
    stub.HoldBalance(pb.HoldBalanceRequest(member_id=alice, order_id=new_id("ord"), max_amount=1),
                     metadata=order_service(mid))
    error = rpc_error(stub.RefundRecharge, pb.RefundRechargeRequest(recharge_id=spent.recharge_id, reason="asked",
                                                                    idempotency_key="r3"),
                      metadata=staff(mid, "FINANCE"))
    assert (error.code(), reason(error)) == (grpc.StatusCode.FAILED_PRECONDITION, "BALANCE_RECHARGE_SPENT")
    mine = balance(stub, mid, alice)
    assert (mine.available + mine.held, mine.held) == (5_500, 1)
    wait_until(lambda: db.balance_accounts.find_one({"member_id": alice})["pending_count"] == 0,
               message="entries stored")
    assert ledger_total(db, mid, alice) == 5_500
    recharges = stub.GetMemberBalance(pb.GetMemberBalanceRequest(member_id=alice),
                                      metadata=staff(mid, "OPERATOR")).recharges
    assert [(r.recharge_id, r.state) for r in recharges] == [(spent.recharge_id, pb.RECHARGE_STATE_CREDITED),
                                                             (kept.recharge_id, pb.RECHARGE_STATE_REFUNDING)]


def test_bad_input_is_refused_field_by_field_and_writes_nothing(stub, db):
    mid = new_merchant_id()
    alice = member(stub, mid)
    svc, fin, op = order_service(mid), staff(mid, "FINANCE"), staff(mid)
    for call, request, meta, fields in (
            (stub.CreateRechargePackage, pb.CreateRechargePackageRequest(name="", price=99, bonus=-1,
                                                                         idempotency_key="bad key"), op,
             {"name", "price", "bonus", "idempotency_key"}),
            (stub.SetRechargePackageState, pb.SetRechargePackageStateRequest(package_id="rcp_1"), op,
             {"package_id", "state"}),
            (stub.ListRechargePackages, pb.ListRechargePackagesRequest(page_size=101), op, {"page_size"}),
            (stub.ListRechargePackages, pb.ListRechargePackagesRequest(page_token="junk"), op, {"page_token"}),
            (stub.ListMyBalanceHistory, pb.ListMyBalanceHistoryRequest(page_size=-1), as_member(mid, alice),
             {"page_size"}),
            (stub.GetMemberBalance, pb.GetMemberBalanceRequest(member_id="m"), fin, {"member_id"}),
            (stub.ListMemberBalanceHistory, pb.ListMemberBalanceHistoryRequest(member_id=alice, page_token="x"), fin,
             {"page_token"}),
            (stub.RefundRecharge, pb.RefundRechargeRequest(recharge_id="rch_1"), fin,
             {"recharge_id", "reason", "idempotency_key"}),
            (stub.GetRechargePackage, pb.GetRechargePackageRequest(), svc, {"package_id"}),
            (stub.HoldBalance, pb.HoldBalanceRequest(member_id=alice, order_id="o", max_amount=0), svc,
             {"order_id", "max_amount"}),
            (stub.CaptureBalance, pb.CaptureBalanceRequest(member_id="m", order_id=new_id("ord")), svc,
             {"member_id"}),
            (stub.ReleaseBalance, pb.ReleaseBalanceRequest(member_id=alice), svc, {"order_id"}),
            (stub.RefundToBalance, pb.RefundToBalanceRequest(member_id=alice, order_id=new_id("ord"),
                                                             refund_id="rfd_1", amount=0), svc,
             {"refund_id", "amount"})):
        error = rpc_error(call, request, metadata=meta)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, call
        assert fields <= set(field_violations(error)), (call, field_violations(error))
    assert db.recharge_packages.count_documents({"merchant_id": mid}) == 0
    assert db.balance_accounts.count_documents({"merchant_id": mid}) == 0
    assert db.balance_entries.count_documents({"merchant_id": mid}) == 0


async def test_another_merchant_finds_nothing_and_wrong_roles_are_denied(stack, stub, db):
    mid, other = new_merchant_id(), new_merchant_id()
    alice = member(stub, mid)
    recharge = await recharged(stack, stub, mid, alice, 1_000, 0)
    package = stub.CreateRechargePackage(pb.CreateRechargePackageRequest(name="p", price=1_000, idempotency_key="p"),
                                         metadata=staff(mid)).package
    order_id = new_id("ord")
    stub.HoldBalance(pb.HoldBalanceRequest(member_id=alice, order_id=order_id, max_amount=100),
                     metadata=order_service(mid))
    for call, request, meta in (
            (stub.SetRechargePackageState, pb.SetRechargePackageStateRequest(
                package_id=package.package_id, state=pb.RECHARGE_PACKAGE_STATE_INACTIVE), staff(other)),
            (stub.GetRechargePackage, pb.GetRechargePackageRequest(package_id=package.package_id),
             order_service(other)),
            (stub.GetMemberBalance, pb.GetMemberBalanceRequest(member_id=alice), staff(other, "FINANCE")),
            (stub.ListMemberBalanceHistory, pb.ListMemberBalanceHistoryRequest(member_id=alice),
             staff(other, "FINANCE")),
            (stub.RefundRecharge, pb.RefundRechargeRequest(recharge_id=recharge.recharge_id, reason="r",
                                                           idempotency_key="k"), staff(other, "FINANCE")),
            (stub.HoldBalance, pb.HoldBalanceRequest(member_id=alice, order_id=new_id("ord"), max_amount=100),
             order_service(other)),
            (stub.ReleaseBalance, pb.ReleaseBalanceRequest(member_id=alice, order_id=order_id),
             order_service(other)),
            (stub.CaptureBalance, pb.CaptureBalanceRequest(member_id=alice, order_id=order_id), order_service(other)),
            (stub.RefundToBalance, pb.RefundToBalanceRequest(member_id=alice, order_id=order_id,
                                                             refund_id=new_id("rfd"), amount=1),
             order_service(other))):
        error = rpc_error(call, request, metadata=meta)
        assert error.code() == grpc.StatusCode.NOT_FOUND, call
    assert not stub.ListRechargePackages(pb.ListRechargePackagesRequest(), metadata=staff(other)).packages
    mine = balance(stub, mid, alice)
    assert (mine.available, mine.held) == (900, 100)
    assert db.balance_accounts.count_documents({"merchant_id": other}) == 0
    for call, request, role in (
            (stub.CreateRechargePackage, pb.CreateRechargePackageRequest(name="p", price=1_000, idempotency_key="q"),
             "FINANCE"),
            (stub.SetRechargePackageState, pb.SetRechargePackageStateRequest(
                package_id=package.package_id, state=pb.RECHARGE_PACKAGE_STATE_INACTIVE), "GUIDE"),
            (stub.ListRechargePackages, pb.ListRechargePackagesRequest(), "GUIDE"),
            (stub.GetMemberBalance, pb.GetMemberBalanceRequest(member_id=alice), "GUIDE"),
            (stub.ListMemberBalanceHistory, pb.ListMemberBalanceHistoryRequest(member_id=alice), "GUIDE"),
            (stub.RefundRecharge, pb.RefundRechargeRequest(recharge_id=recharge.recharge_id, reason="r",
                                                           idempotency_key="k"), "OPERATOR")):
        error = rpc_error(call, request, metadata=staff(mid, role))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, call
    # Members and staff do not reach the order service's RPCs, nor staff a member's balance.
    for call, request, meta in (
            (stub.HoldBalance, pb.HoldBalanceRequest(member_id=alice, order_id=new_id("ord"), max_amount=1),
             as_member(mid, alice)),
            (stub.GetRechargePackage, pb.GetRechargePackageRequest(package_id=package.package_id), staff(mid))):
        error = rpc_error(call, request, metadata=meta)
        assert error.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED), call
    assert db.recharge_packages.find_one({"_id": package.package_id})["state"] == "ACTIVE"
    assert balance(stub, mid, alice).held == 100


@pytest.fixture(scope="module")
def storage(stack):
    settings = load("member")
    kit_db.connect(stack.mongodb_uri, settings.mongodb_db, threads=4, service="balance-test")
    return settings


def stored_value(stack, shift: timedelta = timedelta(0)) -> StoredValue:
    return StoredValue(stored_value_store.RechargePackageRepository(), stored_value_store.BalanceRepository(),
                       repositories.MemberRepository(),
                       OrderRefundsClient(clients.channel(f"127.0.0.1:{stack.ports['order']}", "member")),
                       clock=lambda: utcnow() + shift)


async def test_a_crash_between_the_account_and_the_ledger_is_repaired(stack, stub, storage, db, monkeypatch):
    mid = new_merchant_id()
    alice = member(stub, mid)
    await recharged(stack, stub, mid, alice, 1_000, 200)
    order_id = new_id("ord")

    def crash(*args, **kwargs):
        raise RuntimeError("the process died here")

    with caller(mid, service="order"):
        await stored_value(stack).hold(alice, order_id, 600)
        monkeypatch.setattr(stored_value_store, "_store_owed", crash)
        with pytest.raises(RuntimeError):
            await stored_value(stack).capture(alice, order_id)
        monkeypatch.undo()
        # The capture itself stood: a retry answers it without a second entry.
        assert await stored_value(stack).capture(alice, order_id) == (600, False)
    assert db.balance_accounts.find_one({"merchant_id": mid, "member_id": alice})["pending_count"] == 1
    assert ledger_total(db, mid, alice) == 1_200  # the ledger is one entry short…
    assert await stored_value(stack).repair() == 0  # …not for long enough to repair yet
    assert await stored_value(stack, timedelta(seconds=31)).repair() >= 1
    mine = balance(stub, mid, alice)
    assert ledger_total(db, mid, alice) == mine.available + mine.held == 600  # …until the repair stores it
    assert db.balance_accounts.find_one({"merchant_id": mid, "member_id": alice})["pending_count"] == 0


async def test_database_commands_per_movement(stack, stub, storage):
    mid = new_merchant_id()
    alice = member(stub, mid)
    await recharged(stack, stub, mid, alice, 1_000, 200)
    counter = DB_COMMANDS.labels("balance-test", "background")
    cases = stored_value(stack)
    order_id = new_id("ord")

    def commands_of(before: float) -> int:
        return int(counter._value.get() - before)

    with caller(mid, service="order"):
        # As on a busy process: each collection was used before (its indexes ensured once).
        warm = new_id("ord")
        await cases.hold(alice, warm, 100)
        await cases.capture(alice, warm)
        await cases.refund_to_balance(alice, warm, new_id("rfd"), 100)
        before = counter._value.get()
        await cases.hold(alice, order_id, 600)
        hold = commands_of(before)
        before = counter._value.get()
        await cases.capture(alice, order_id)
        capture = commands_of(before)
        before = counter._value.get()
        await cases.capture(alice, order_id)
        replay = commands_of(before)
        before = counter._value.get()
        await cases.refund_to_balance(alice, order_id, new_id("rfd"), 100)
        refund = commands_of(before)
    # A hold: the account and the guarded update. A movement of the balance: also the
    # ledger entry and clearing the debt. A replay: the account alone.
    assert (hold, capture, refund, replay) == (2, 4, 4, 1), (hold, capture, refund, replay)
