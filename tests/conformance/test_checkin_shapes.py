"""The query and update shapes of check-in (services/member/adapters/checkin_store.py): the
check-in's unique key on insert, its read by key, the paid mark that applies once, a
month's check-ins by a range of day strings, the unpaid ones by an epoch-ms range, and the
settings' insert and version compare-and-set with a whole array replaced by `$set`."""
from __future__ import annotations

from datetime import date, datetime, timezone

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from siyu_kit.ids import new_id
from tests.support import new_merchant_id

from services.member.adapters.checkin_store import (between_query, check_in_doc, check_in_of, key_query, paid_update,
                                                    settings_doc, settings_update, unpaid_query)
from services.member.domain.checkin import CheckIn, CheckInSettings


def _made(merchant: str, member: str, day: date, at_ms: int = 1_780_000_000_000) -> CheckIn:
    at = datetime.fromtimestamp(at_ms / 1000, tz=timezone.utc)
    return CheckIn(merchant, member, day, 1, 1, 10, 1, at, channel="H5")


def _indexed(coll):
    coll.create_index([("merchant_id", ASCENDING), ("member_id", ASCENDING), ("day", ASCENDING)])
    coll.create_index([("paid", ASCENDING), ("created_ms", ASCENDING)])
    return coll


def test_one_check_in_per_member_and_day_and_its_read_by_key(coll):
    coll = _indexed(coll)
    merchant, member = new_merchant_id(), new_id("mem")
    first = _made(merchant, member, date(2026, 6, 1))
    coll.insert_one(check_in_doc(first))
    try:
        coll.insert_one(check_in_doc(_made(merchant, member, date(2026, 6, 1))))
        raise AssertionError("a second check-in of the day was stored")
    except DuplicateKeyError:
        pass
    # Another merchant's member with the same id and day is another key.
    coll.insert_one(check_in_doc(_made(new_merchant_id(), member, date(2026, 6, 1))))
    found = check_in_of(coll.find_one(key_query(merchant, member, date(2026, 6, 1)), {"outbox": 0}))
    assert (found.day, found.points, found.paid, found.channel) == (date(2026, 6, 1), 10, False, "H5")
    assert found.checked_in_at == first.checked_in_at
    assert coll.find_one(key_query(new_merchant_id(), member, date(2026, 6, 1))) is None
    assert coll.find_one(key_query(merchant, member, date(2026, 6, 2))) is None


def test_the_paid_mark_applies_once_and_leaves_the_unpaid_query(coll):
    coll = _indexed(coll)
    merchant, member = new_merchant_id(), new_id("mem")
    old, fresh = _made(merchant, member, date(2026, 6, 1), 1_000_000), _made(merchant, member, date(2026, 6, 2),
                                                                            9_000_000)
    other = _made(new_merchant_id(), new_id("mem"), date(2026, 6, 1), 2_000_000)
    for c in (old, fresh, other):
        coll.insert_one(check_in_doc(c))
    unpaid = {d["_id"] for d in coll.find(unpaid_query(5_000_000)).limit(10)}
    assert unpaid == {old.id, other.id}
    assert coll.update_one(*paid_update(old)).modified_count == 1
    assert coll.update_one(*paid_update(old)).modified_count == 0
    assert check_in_of(coll.find_one(key_query(merchant, member, old.day))).paid is True
    assert {d["_id"] for d in coll.find(unpaid_query(5_000_000)).limit(10)} == {other.id}
    assert {d["_id"] for d in coll.find(unpaid_query(10_000_000)).limit(10)} == {other.id, fresh.id}
    assert len(list(coll.find(unpaid_query(10_000_000)).limit(1))) == 1


def test_a_months_check_ins_by_a_range_of_day_strings(coll):
    coll = _indexed(coll)
    merchant, member = new_merchant_id(), new_id("mem")
    days = [date(2026, 1, 31), date(2026, 2, 1), date(2026, 2, 9), date(2026, 2, 10), date(2026, 2, 28),
            date(2026, 3, 1), date(2025, 2, 15), date(2027, 2, 1)]
    for day in days:
        coll.insert_one(check_in_doc(_made(merchant, member, day)))
    coll.insert_one(check_in_doc(_made(merchant, new_id("mem"), date(2026, 2, 5))))
    coll.insert_one(check_in_doc(_made(new_merchant_id(), member, date(2026, 2, 6))))
    found = [check_in_of(d).day for d in coll.find(between_query(merchant, member, date(2026, 2, 1),
                                                                 date(2026, 2, 28)),
                                                   {"outbox": 0}).sort("day", ASCENDING).limit(31)]
    assert found == [date(2026, 2, 1), date(2026, 2, 9), date(2026, 2, 10), date(2026, 2, 28)]
    year_end = [check_in_of(d).day for d in coll.find(between_query(merchant, member, date(2025, 12, 1),
                                                                    date(2026, 1, 31))).sort("day", ASCENDING)]
    assert year_end == [date(2026, 1, 31)]
    assert list(coll.find(between_query(merchant, member, date(2026, 4, 1), date(2026, 4, 30)))) == []


def test_settings_are_inserted_once_and_changed_on_their_version(coll):
    merchant = new_merchant_id()
    coll.insert_one(settings_doc(merchant, CheckInSettings((5, 15), 2), 1))
    try:
        coll.insert_one(settings_doc(merchant, CheckInSettings((1,), 0), 2))
        raise AssertionError("a merchant's settings were stored twice")
    except DuplicateKeyError:
        pass
    assert coll.update_one(*settings_update(merchant, CheckInSettings((1, 2, 3), 0), 2, 3)).modified_count == 0
    assert coll.update_one(*settings_update(merchant, CheckInSettings((1, 2, 3), 0), 1, 3)).modified_count == 1
    doc = coll.find_one({"_id": merchant, "merchant_id": merchant})
    assert (CheckInSettings.from_doc(doc), doc["version"]) == (CheckInSettings((1, 2, 3), 0), 2)
    assert coll.update_one(*settings_update(merchant, CheckInSettings((9,), 1), 1, 4)).modified_count == 0
    assert coll.find_one({"_id": merchant, "merchant_id": new_merchant_id()}) is None
