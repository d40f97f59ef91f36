"""The query and update shapes of members' data exports
(services/member/adapters/personal_data_store.py, services/order/adapters/personal_data_store.py),
run through the adapters themselves: the unique (merchant, member, key) insert answering the
first export, the lease taken by a compare-and-set on the epoch-ms integer read (a second
taker loses), a dotted $set of a sealed part only by the lease's holder, expiry by an
epoch-ms range that unsets the parts, and the per-member reads of the export's parts."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from services.member.adapters import personal_data_store as store
from services.member.domain.personal_data import KEEP, LEASE, DataExport
from services.catalog.adapters import personal_data_store as catalog_store
from services.order.adapters import personal_data_store as order_store
from siyu_kit.ids import new_id
from siyu_kit.sealing import Sealer, new_key
from tests.support import new_merchant_id

NOW = datetime(2026, 6, 1, 4, 0, 0, 123000, tzinfo=timezone.utc)
SEALER = Sealer.from_setting(new_key())


@pytest.fixture
def exports(coll, monkeypatch):
    monkeypatch.setattr(store, "_col", lambda: coll)
    coll.create_index([("merchant_id", 1), ("member_id", 1), ("idempotency_key", 1)], unique=True)
    return store.DataExportRepository(SEALER)


def export_of(merchant: str, member: str, key: str = "k1") -> DataExport:
    return DataExport(id=new_id("dex"), merchant_id=merchant, member_id=member, idempotency_key=key, created_at=NOW)


async def test_one_export_per_key_the_lease_the_parts_and_expiry(exports, coll):
    merchant, member = new_merchant_id(), new_id("mem")
    first = await exports.add(export_of(merchant, member))
    again = await exports.add(export_of(merchant, member))
    assert again.id == first.id and again.created_at == NOW
    assert await exports.get(merchant, member, first.id) is not None
    assert await exports.get(merchant, new_id("mem"), first.id) is None
    assert await exports.get(new_merchant_id(), member, first.id) is None

    leased = await exports.lease_next("a", NOW)
    assert leased.id == first.id
    assert await exports.lease_next("b", NOW) is None  # held by a until the lease runs out
    leased.parts["member"] = json.dumps({"nickname": "小美"}, ensure_ascii=False)
    leased.gathered("member", NOW)
    assert await exports.save_part(leased, "b", "member") is False
    assert await exports.save_part(leased, "a", "member") is True
    raw = coll.find_one({"_id": first.id})
    assert raw["parts"]["member"].startswith("v1.") and raw["done"] == ["member"]
    assert (await exports.get(merchant, member, first.id)).parts == {"member": '{"nickname": "小美"}'}

    # Another replica takes it over once the lease ran out; the first holder writes nothing.
    later = NOW + LEASE + timedelta(seconds=1)
    taken = await exports.lease_next("b", later)
    assert taken.id == first.id and taken.done == ("member",)
    taken.parts["order"] = "{}"
    taken.gathered("order", later)
    assert await exports.save_part(taken, "a", "order") is False
    assert await exports.save_part(taken, "b", "order") is True
    assert (await exports.get(merchant, member, first.id)).state == "GATHERING"
    taken.parts["catalog"] = "{}"
    taken.gathered("catalog", later)
    assert await exports.save_part(taken, "b", "catalog") is True
    ready = await exports.get(merchant, member, first.id)
    assert (ready.state, ready.steps_done, ready.expires_at) == ("READY", 3, later + KEEP)
    assert await exports.lease_next("c", later + LEASE * 10) is None

    assert await exports.expire_due(later + KEEP - timedelta(milliseconds=1), 10) == 0
    assert await exports.expire_due(later + KEEP, 10) == 1
    assert await exports.expire_due(later + KEEP, 10) == 0
    raw = coll.find_one({"_id": first.id})
    assert raw["state"] == "EXPIRED" and "parts" not in raw


async def test_the_member_and_order_parts_read_only_the_members_records(db, monkeypatch):
    monkeypatch.setattr(store, "_db", lambda: db)
    merchant, member, other = new_merchant_id(), new_id("mem"), new_id("mem")
    db["members"].insert_one({"_id": member, "merchant_id": merchant, "nickname": "小美", "phone_key": "x",
                              "outbox": [{"id": "e"}], "created_at": NOW})
    db["member_phones"].insert_one({"_id": new_id("mph"), "merchant_id": merchant, "member_id": member,
                                    "phone_sealed": SEALER.seal("13812348000", f"phone:{merchant}")})
    db["union_identities"].insert_one({"_id": new_id("idn"), "merchant_id": merchant, "member_id": member,
                                       "unionid": "union-abcdefgh"})
    for who in (member, other):
        db["points_entries"].insert_one({"_id": new_id("pte"), "merchant_id": merchant, "member_id": who,
                                         "points": 10})
    db["referrals"].insert_one({"_id": new_id("ref"), "merchant_id": merchant, "inviter_id": member,
                                "invitee_id": other, "unionid_hash": "h", "bound_at": NOW})
    part = await store.MemberOwnData(SEALER).gather(merchant, member)
    assert part["profile"]["nickname"] == "小美" and part["profile"]["phone_masked"] == "138****8000"
    assert "phone_key" not in part["profile"] and "outbox" not in part["profile"]
    assert part["profile"]["created_at"] == NOW.isoformat()
    assert part["identities"][0]["unionid"] == "unio****efgh"
    assert [e["member_id"] for e in part["points"]["entries"]] == [member]
    assert part["referral"]["invited"] == [{"member_id": other, "bound_at": NOW.isoformat(), "state": None}]

    monkeypatch.setattr(order_store, "_collection", lambda name: db[f"order_{name}"])
    db["order_orders"].insert_many([
        {"_id": new_id("ord"), "merchant_id": merchant, "member_id": member,
         "address": {"recipient": "张三", "phone_masked": "138****8000", "phone_sealed": "v1.x"}},
        {"_id": new_id("ord"), "merchant_id": merchant, "member_id": other}])
    orders = await order_store.MemberRecordStore().of_member(merchant, member, "orders")
    assert [o["member_id"] for o in orders] == [member]
    assert orders[0]["address"] == {"recipient": "张三", "phone_masked": "138****8000"}

    monkeypatch.setattr(catalog_store, "_collection", lambda name: db[f"catalog_{name}"])
    db["catalog_flash_sale_quotas"].insert_many([
        {"_id": f"fls_1:{member}", "merchant_id": merchant, "member_id": member, "used": 1, "holds": {"rsv_1": 1}},
        {"_id": f"fls_1:{other}", "merchant_id": merchant, "member_id": other, "used": 1}])
    quotas = await catalog_store.MemberRecordStore().of_member(merchant, member, "flash_sale_quotas")
    assert quotas == [{"_id": f"fls_1:{member}", "merchant_id": merchant, "member_id": member, "used": 1,
                       "holds": {"rsv_1": 1}}]
