"""Check-in in process against the member service's real MongoDB: simultaneous taps store
one check-in and one points entry; a process that dies before the payment, or after it but
before noting it, leaves a check-in that a repeat or the repair job pays exactly once; and
the database commands a check-in costs."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from siyu.member.v1 import member_pb2 as pb, member_pb2_grpc

from siyu_kit import db as kit_db
from siyu_kit.config import load
from siyu_kit.ids import new_id
from siyu_kit.metrics import DB_COMMANDS
from siyu_kit.protos import utcnow
from tests.fakes.callers import caller
from tests.support import database_fixture, metadata, new_merchant_id, stub_fixture, wait_until
from tests.support.member import login

from services.member.adapters import checkin_store, points_store, repositories
from services.member.application.checkin import CheckIns

stub = stub_fixture("member", member_pb2_grpc.MemberServiceStub)
db = database_fixture("member")


@pytest.fixture(scope="module")
def storage(stack):
    settings = load("member")
    kit_db.connect(stack.mongodb_uri, settings.mongodb_db, threads=4, service="checkin-test")
    checkin_store.ensure_indexes()
    return settings


def use_cases(shift: timedelta = timedelta(0)) -> CheckIns:
    return CheckIns(checkin_store.CheckInRepository(), checkin_store.CheckInSettingsRepository(),
                    repositories.MemberRepository(), repositories.MerchantRepository(), points_store.PointsStore(),
                    repositories.AuditLogRepository(), clock=lambda: utcnow() + shift)


def member(stub) -> tuple[str, str]:
    merchant_id = new_merchant_id()
    return merchant_id, login(stub, merchant_id, f"u-{new_id('u')[-8:]}").member.member_id


def points(stub, merchant_id, member_id):
    return stub.GetPoints(pb.GetPointsRequest(), metadata=metadata(merchant_id, channel="H5", member_id=member_id))


def check_in_entries(db, merchant_id, member_id) -> list[dict]:
    return list(db.points_entries.find({"merchant_id": merchant_id, "member_id": member_id, "kind": "CHECK_IN"}))


async def tap(cases: CheckIns, merchant_id: str, member_id: str):
    with caller(merchant_id, member_id=member_id, channel="H5"):
        return await cases.check_in()


def test_a_check_in_over_grpc_is_relayed_and_shown_in_the_calendar(stub, db):
    merchant_id, member_id = member(stub)
    as_member = metadata(merchant_id, channel="H5", member_id=member_id)
    done = stub.CheckIn(pb.CheckInRequest(), metadata=as_member)
    assert not done.repeat and (done.check_in.points, done.check_in.streak, done.check_in.cycle_day) == (10, 1, 1)
    # The check-in's event leaves its outbox (the relay serves the check-ins collection).
    wait_until(lambda: db.check_ins.find_one({"merchant_id": merchant_id, "member_id": member_id})[
        "outbox_pending"] == 0, message="check-in event relayed")
    page = stub.GetCheckInCalendar(pb.GetCheckInCalendarRequest(), metadata=as_member)
    assert [c.day for c in page.check_ins] == [done.check_in.day] and page.checked_in_today
    assert stub.CheckIn(pb.CheckInRequest(), metadata=as_member).repeat


async def test_simultaneous_taps_store_one_check_in_and_one_entry(stub, storage, db):
    merchant_id, member_id = member(stub)
    # Several processes' worth of use cases, each tapping at once.
    results = await asyncio.gather(*(tap(use_cases(), merchant_id, member_id) for _ in range(10)))
    assert sum(not repeat for _, repeat in results) == 1
    assert db.check_ins.count_documents({"merchant_id": merchant_id, "member_id": member_id}) == 1
    assert [e["points"] for e in check_in_entries(db, merchant_id, member_id)] == [10]
    mine = points(stub, merchant_id, member_id)
    assert (mine.balance, mine.available) == (10, 10)
    assert db.members.find_one({"_id": member_id})["growth"] == 1


async def test_a_death_before_the_payment_is_paid_once_by_the_repair_job(stub, storage, db, monkeypatch):
    merchant_id, member_id = member(stub)

    def crash(*args, **kwargs):
        raise RuntimeError("the process died here")

    monkeypatch.setattr(points_store, "move", crash)
    with pytest.raises(RuntimeError):
        await tap(use_cases(), merchant_id, member_id)
    monkeypatch.undo()
    stored = db.check_ins.find_one({"merchant_id": merchant_id, "member_id": member_id})
    assert stored["paid"] == 0 and check_in_entries(db, merchant_id, member_id) == []
    assert points(stub, merchant_id, member_id).balance == 0
    # Three replicas' repair jobs at once, past the 30 s grace: one payment.
    later = timedelta(seconds=31)
    await asyncio.gather(use_cases(later).repair(), use_cases(later).repair(), use_cases(later).repair())
    assert [e["points"] for e in check_in_entries(db, merchant_id, member_id)] == [10]
    assert db.check_ins.find_one({"_id": stored["_id"]})["paid"] == 1
    assert points(stub, merchant_id, member_id).balance == 10
    # The member's next tap is a repeat and pays nothing more.
    again, repeat = await tap(use_cases(), merchant_id, member_id)
    assert repeat and again.points == 10
    assert points(stub, merchant_id, member_id).balance == 10


async def test_a_death_after_the_payment_before_it_is_noted_pays_nothing_more(stub, storage, db, monkeypatch):
    merchant_id, member_id = member(stub)

    async def crash(self, check_in):
        raise RuntimeError("the process died here")

    monkeypatch.setattr(checkin_store.CheckInRepository, "mark_paid", crash)
    with pytest.raises(RuntimeError):
        await tap(use_cases(), merchant_id, member_id)
    monkeypatch.undo()
    assert db.check_ins.find_one({"merchant_id": merchant_id, "member_id": member_id})["paid"] == 0
    assert points(stub, merchant_id, member_id).balance == 10
    # The repeat writes the payment again: it applies once, and the check-in is noted paid.
    _, repeat = await tap(use_cases(), merchant_id, member_id)
    assert repeat
    assert await use_cases(timedelta(seconds=31)).repair() == 0
    assert len(check_in_entries(db, merchant_id, member_id)) == 1
    assert db.check_ins.find_one({"merchant_id": merchant_id, "member_id": member_id})["paid"] == 1
    assert points(stub, merchant_id, member_id).balance == 10


async def test_database_commands_per_check_in(stub, storage):
    merchant_id, member_id = member(stub)
    # Yesterday's check-in opened the points account; today's continues the streak.
    await tap(use_cases(-timedelta(days=1)), merchant_id, member_id)
    cases = use_cases()
    await cases.points.terms(merchant_id)  # as on a busy process: the merchant's terms are in memory
    counter = DB_COMMANDS.labels("checkin-test", "background")
    before = counter._value.get()
    done, _ = await tap(cases, merchant_id, member_id)
    first = counter._value.get() - before
    before = counter._value.get()
    await tap(cases, merchant_id, member_id)
    repeat = counter._value.get() - before
    assert (done.streak, done.points) == (2, 20)
    # member, today, yesterday, settings, the insert; the account, the guarded update, the
    # entry, clearing the debt, the growth sync (the ledger's growth read, two conditional
    # writes), the paid mark
    assert first == 13, first
    # member, today
    assert repeat == 2, repeat
